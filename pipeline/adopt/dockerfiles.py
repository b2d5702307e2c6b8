"""What `pipeline init` reads from a Dockerfile: its stages (a `test` stage, the last one), the
ARGs, `EXPOSE`, `USER` and a fixed `--platform`; and which files of a repository are Dockerfiles.

Parsed with dockerfile-parse (as the preflight does) after heredoc bodies are blanked out (it
reads `RUN <<EOF` bodies as instructions). A file Docker would refuse (an unknown instruction,
nothing before the first FROM but ARG, a FROM without an image) is a SpecError naming the line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from dockerfile_parse import DockerfileParser

from pipeline.errors import SpecError

DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")
# Folders whose Dockerfiles are not the project's images: dependencies and tool caches.
SKIPPED_FOLDERS = frozenset({"node_modules", "vendor", "third_party", "site-packages"})
INSTRUCTIONS = frozenset(
    {
        "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
        "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
        "HEALTHCHECK", "SHELL",
    }
)  # fmt: skip
TEST_STAGE = "test"
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_ARG_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Stage:
    name: str | None  # `AS name`, lowercased as Docker does
    base: str  # the FROM image as written (`${BASE_IMAGE}`, `debian:bookworm-slim`, a stage)
    line: int  # 1-based
    platform: str | None = None  # `FROM --platform=linux/amd64 …` when fixed (no variable)


@dataclass(frozen=True)
class Dockerfile:
    path: PurePosixPath  # relative to the repository root
    stages: tuple[Stage, ...]
    args: tuple[tuple[str, str | None], ...] = ()  # every ARG: name and default
    exposes: tuple[str, ...] = ()  # EXPOSE of the final stage
    user: str | None = None  # the final stage's last USER
    healthcheck: bool = False  # the final stage has a HEALTHCHECK (not NONE)
    global_args: tuple[str, ...] = field(default=())  # ARGs declared before the first FROM

    @property
    def folder(self) -> PurePosixPath:
        return self.path.parent

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def target(self) -> str | None:
        """The release target: the last stage, by name (None: unnamed, built by default)."""
        return self.final.name if len(self.stages) > 1 else None

    @property
    def test_target(self) -> str | None:
        names = [s.name for s in self.stages[:-1]]
        return TEST_STAGE if TEST_STAGE in names else None

    def chain(self) -> tuple[Stage, ...]:
        """The final stage and the stages it is built FROM, nearest first."""
        by_name = {s.name: s for s in self.stages if s.name}
        found: list[Stage] = []
        stage: Stage | None = self.final
        while stage is not None and stage not in found:
            found.append(stage)
            stage = by_name.get(stage.base.lower())
        return tuple(found)

    @property
    def base_image_arg(self) -> str | None:
        """A global ARG that names the base of the final stage's chain (`FROM ${BASE_IMAGE}`)."""
        for stage in self.chain():
            for name in _ARG_REF.findall(stage.base):
                if name in self.global_args:
                    return str(name)
        return None

    @property
    def platforms(self) -> tuple[str, ...] | None:
        """The one platform the release is fixed to (`FROM --platform=linux/amd64` in its chain)."""
        fixed = next((s.platform for s in self.chain() if s.platform), None)
        return (fixed,) if fixed else None


def is_dockerfile(path: PurePosixPath) -> bool:
    if path.name not in DOCKERFILE_NAMES:
        return False
    return not any(part.startswith(".") or part in SKIPPED_FOLDERS for part in path.parent.parts)


def find(files: Iterable[str]) -> tuple[PurePosixPath, ...]:
    """The Dockerfiles among a repository's files (relative paths), the root's first."""
    found = {PurePosixPath(f) for f in files if is_dockerfile(PurePosixPath(f))}
    return tuple(sorted(found, key=lambda p: (len(p.parts), p.as_posix())))


def blank_heredocs(text: str) -> str:
    """The text with heredoc bodies (`RUN <<EOF … EOF`) replaced by empty lines, so the parser
    sees only instructions and every line keeps its number."""
    lines = text.split("\n")
    out: list[str] = []
    pending: list[tuple[bool, str]] = []
    for line in lines:
        if pending:
            strip_tabs, word = pending[0]
            if (line.lstrip("\t") if strip_tabs else line) == word:
                pending.pop(0)
            out.append("")
            continue
        out.append(line)
        if not line.lstrip().startswith("#"):
            pending = [(bool(m.group(1)), m.group(3)) for m in _HEREDOC.finditer(line)]
    return "\n".join(out)


def parse(path: PurePosixPath, text: str) -> Dockerfile:
    """Read one Dockerfile (`path` is only for messages and the result)."""
    if "\x00" in text:
        raise SpecError(f"{path}: not a Dockerfile (binary content)")
    parser = DockerfileParser(fileobj=io.BytesIO(blank_heredocs(text).encode()))
    structure: list[dict[str, Any]] = parser.structure
    stages: list[Stage] = []
    args: list[tuple[str, str | None]] = []
    global_args: list[str] = []
    final: list[dict[str, Any]] = []
    for item in structure:
        instruction, value = str(item["instruction"]).upper(), str(item["value"]).strip()
        line = int(item["startline"]) + 1
        if instruction == "COMMENT":  # dockerfile-parse keeps comments as instructions
            continue
        if instruction not in INSTRUCTIONS:
            raise SpecError(f"{path}:{line}: unknown instruction {item['instruction']!r}")
        if instruction == "FROM":
            stages.append(_stage(path, line, value))
            final = []
            continue
        if not stages and instruction != "ARG":
            raise SpecError(f"{path}:{line}: {instruction} before the first FROM")
        if instruction == "ARG":
            for name, default in _arg_pairs(value):
                args.append((name, default))
                if not stages:
                    global_args.append(name)
        final.append({"instruction": instruction, "value": value})
    if not stages:
        raise SpecError(f"{path}: no FROM instruction (an empty or unreadable Dockerfile)")
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    checks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    exposes = [port for i in final if i["instruction"] == "EXPOSE" for port in i["value"].split()]
    return Dockerfile(
        path=path,
        stages=tuple(stages),
        args=tuple(args),
        exposes=tuple(exposes),
        user=users[-1] if users else None,
        healthcheck=bool(checks) and not checks[-1].upper().startswith("NONE"),
        global_args=tuple(global_args),
    )


def _stage(path: PurePosixPath, line: int, value: str) -> Stage:
    words = value.split()
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    if not rest:
        raise SpecError(f"{path}:{line}: FROM names no image")
    name = None
    if len(rest) >= 3 and rest[1].lower() == "as":
        name = rest[2].lower()
    elif len(rest) != 1:
        raise SpecError(f"{path}:{line}: FROM {value!r}: expected `FROM image [AS name]`")
    platform = None
    for flag in flags:
        key, _, text = flag.partition("=")
        if key == "--platform" and text and "$" not in text:
            platform = text
    return Stage(name=name, base=rest[0], line=line, platform=platform)


def _arg_pairs(value: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for token in value.split():
        name, sep, default = token.partition("=")
        pairs.append((name, default.strip("\"'") if sep else None))
    return pairs
