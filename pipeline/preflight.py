"""Preflight: Dockerfile and build-context checks that run before any build (seed 000 §4, §10.5,
§15.3 and the supply-chain notes). Each check is error, warning or off per the spec's policy.

The checks are pure functions over the Dockerfile's parsed instructions (`dockerfile-parse`, which
also resolves ARG defaults and build arguments in FROM lines) and the `.dockerignore` text; only
`run_preflight` reads files.
"""

from __future__ import annotations

import fnmatch
import io
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockerfile_parse import DockerfileParser
from rich.table import Table

from pipeline import ui
from pipeline.errors import GateFailed
from pipeline.spec import Image, Level
from pipeline.specload import LoadedSpec

# What a .dockerignore must keep out of every build context: (example path, what it stands for).
MUST_IGNORE = (
    (".git", ".git"),
    (".env", ".env*"),
    (".env.production", ".env*"),
    ("deploy.key", "keys (*.key)"),
    ("tls/server.pem", "*.pem"),
)
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "TOKEN", "SECRET", "KEY", "APIKEY", "CREDENTIALS"}
)
ROOT_USERS = frozenset({"root", "0"})


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    image: str
    where: str  # file:line
    message: str


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")


@dataclass(frozen=True)
class Stage:
    name: str | None
    base: str  # resolved
    line: int  # 1-based
    instructions: tuple[dict[str, Any], ...]


def parse_stages(text: str, build_args: Mapping[str, str]) -> list[Stage]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), build_args=dict(build_args))
    structure: list[dict[str, Any]] = parser.structure
    bases: list[str] = list(parser.parent_images)
    stages: list[Stage] = []
    current: list[dict[str, Any]] = []
    for item in structure:
        if item["instruction"] == "FROM":
            if stages or current:
                _close(stages, current)
            current = [item]
        elif current:
            current.append(item)
    if current:
        _close(stages, current)
    return [
        Stage(
            name=s.name,
            base=bases[i] if i < len(bases) else s.base,
            line=s.line,
            instructions=s.instructions,
        )
        for i, s in enumerate(stages)
    ]


def external_bases(text: str, build_args: Mapping[str, str]) -> list[str]:
    """The images a Dockerfile builds FROM (build arguments applied), stages and scratch left out:
    what the provenance lists as the build's base images."""
    stages = parse_stages(text, build_args)
    names = {s.name for s in stages if s.name}
    return sorted(
        {s.base for s in stages if s.base and s.base != "scratch" and s.base not in names}
        - {b for b in (s.base for s in stages) if "$" in b}
    )


def _close(stages: list[Stage], items: list[dict[str, Any]]) -> None:
    words = items[0]["value"].split()
    args = [w for w in words if not w.startswith("--")]
    name = args[2] if len(args) >= 3 and args[1].lower() == "as" else None
    stages.append(
        Stage(
            name=name,
            base=args[0] if args else "",
            line=items[0]["startline"] + 1,
            instructions=tuple(items),
        )
    )


def _level(levels: Mapping[str, Level], check: str) -> Level:
    return levels.get(check, "error")


def check_dockerignore(
    text: str | None, *, where: str, image: str, levels: Mapping[str, Level]
) -> list[Finding]:
    level = _level(levels, "dockerignore")
    if level == "off":
        return []
    if text is None:
        return [
            Finding(
                "dockerignore",
                level,
                image,
                where,
                "no .dockerignore: the whole folder (.git, any .env or key) goes to the build",
            )
        ]
    patterns = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("#", "!"))
    ]
    missing = sorted({what for sample, what in MUST_IGNORE if not _ignored(sample, patterns)})
    if missing:
        return [
            Finding(
                "dockerignore",
                level,
                image,
                where,
                f".dockerignore does not exclude {', '.join(missing)}",
            )
        ]
    return []


def _ignored(sample: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        bare = pattern.rstrip("/").removeprefix("/")
        for candidate in (bare, bare.removeprefix("**/")):
            if fnmatch.fnmatch(sample, candidate) or fnmatch.fnmatch(
                sample.rsplit("/", 1)[-1], candidate
            ):
                return True
    return False


def secret_name(name: str) -> bool:
    """PASSWORD, TOKEN, SECRET or KEY as a word of the name: API_KEY yes, KEYBOARD_LAYOUT no."""
    words = re.split(r"[_\-.]", name.upper())
    return any(word in SECRET_WORDS for word in words) or name.upper().endswith(
        ("PASSWORD", "TOKEN", "SECRET")
    )


def _assignments(instruction: str, value: str) -> list[tuple[str, str | None]]:
    """(name, value or None) pairs of an ARG or ENV instruction."""
    try:
        tokens = shlex.split(value, posix=True)
    except ValueError:
        tokens = value.split()
    if not tokens:
        return []
    if instruction == "ENV" and "=" not in tokens[0]:
        return [(tokens[0], " ".join(tokens[1:]) or None)]
    pairs: list[tuple[str, str | None]] = []
    for token in tokens:
        name, sep, text = token.partition("=")
        pairs.append((name, text if sep and text else None))
    return pairs


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return name, tag, digest or None


def check_dockerfile(
    text: str,
    *,
    dockerfile: str,
    image: str,
    target: str | None,
    build_args: Mapping[str, str],
    levels: Mapping[str, Level],
    spec_bases: frozenset[str] = frozenset(),
) -> list[Finding]:
    """`spec_bases`: FROM references that name another image of the spec, which the release
    builds first and passes in by digest (so they are neither untagged nor floating)."""
    stages = parse_stages(text, build_args)
    if not stages:
        return [Finding("non_root_user", "error", image, dockerfile, "the Dockerfile has no FROM")]
    final = next((s for s in stages if s.name == target), stages[-1]) if target else stages[-1]
    raw = _base_findings(stages, spec_bases) + _user_findings(final) + _healthcheck_findings(final)
    raw += _secret_findings(stages)
    found = []
    for check, line, message in raw:
        level = _level(levels, check)
        if level != "off":
            found.append(Finding(check, level, image, f"{dockerfile}:{line}", message))
    return found


_Raw = tuple[str, int, str]  # (check, line, message)


def _base_findings(stages: list[Stage], spec_bases: frozenset[str] = frozenset()) -> list[_Raw]:
    names = {s.name for s in stages if s.name}
    found: list[_Raw] = []
    for stage in stages:
        base = stage.base
        if base == "scratch" or base in names or "$" in base or base in spec_bases:
            continue
        _, tag, digest = _split_ref(base)
        if digest is None and (tag is None or tag == "latest"):
            what = "untagged" if tag is None else ":latest"
            found.append(
                ("no_latest_base", stage.line, f"FROM {base}: {what} base; pin a version tag")
            )
        if digest is None:
            found.append(
                (
                    "base_pinned_by_digest",
                    stage.line,
                    f"FROM {base} is not pinned by digest (@sha256:…); a moved tag changes "
                    "the image silently",
                )
            )
    return found


def _label(stage: Stage) -> str:
    return f"stage {stage.name!r}" if stage.name else "the final stage"


def _user_findings(final: Stage) -> list[_Raw]:
    users = [i for i in final.instructions if i["instruction"] == "USER"]
    if not users:
        return [("non_root_user", final.line, f"{_label(final)} sets no USER: it runs as root")]
    last = users[-1]
    if last["value"].strip().split(":", 1)[0] in ROOT_USERS:
        where = last["startline"] + 1
        return [("non_root_user", where, f"{_label(final)} runs as USER {last['value'].strip()}")]
    return []


def _healthcheck_findings(final: Stage) -> list[_Raw]:
    checks = [i for i in final.instructions if i["instruction"] == "HEALTHCHECK"]
    if not checks or checks[-1]["value"].strip().upper().startswith("NONE"):
        return [("healthcheck", final.line, f"{_label(final)} has no HEALTHCHECK")]
    return []


def _secret_findings(stages: list[Stage]) -> list[_Raw]:
    found: list[_Raw] = []
    for stage in stages:
        for item in stage.instructions:
            if item["instruction"] not in ("ARG", "ENV"):
                continue
            for name, value in _assignments(item["instruction"], item["value"]):
                if value and secret_name(name):
                    found.append(
                        (
                            "no_secret_args",
                            item["startline"] + 1,
                            f"{item['instruction']} {name} carries a value: it stays in the "
                            "image history; use a build secret (--secret) instead",
                        )
                    )
    return found


def run_preflight(
    loaded: LoadedSpec,
    build_args: Mapping[str, Mapping[str, str]] | None = None,
    spec_bases: Mapping[str, frozenset[str]] | None = None,
) -> Report:
    """Check every image; `build_args` (per image name) are the ones the build will really use,
    `spec_bases` (per image name) the FROM references that name other images of the spec."""
    levels = loaded.spec.preflight.levels
    findings: list[Finding] = []
    for image in loaded.spec.images:
        args = (build_args or {}).get(image.name, image.build_args)
        internal = (spec_bases or {}).get(image.name, frozenset())
        findings += _image_findings(loaded, image, levels, args, internal)
    return Report(tuple(findings))


def _image_findings(
    loaded: LoadedSpec,
    image: Image,
    levels: Mapping[str, Level],
    build_args: Mapping[str, str],
    spec_bases: frozenset[str] = frozenset(),
) -> list[Finding]:
    context = loaded.resolve(image.context)
    dockerfile = context / image.dockerfile
    ignore = context / ".dockerignore"
    relative = _relative(loaded, dockerfile)
    found = check_dockerignore(
        ignore.read_text() if ignore.is_file() else None,
        where=_relative(loaded, ignore),
        image=image.name,
        levels=levels,
    )
    found += check_dockerfile(
        dockerfile.read_text(),
        dockerfile=relative,
        image=image.name,
        target=image.target,
        build_args=build_args,
        levels=levels,
        spec_bases=spec_bases,
    )
    return found


def _relative(loaded: LoadedSpec, path: Any) -> str:
    try:
        return str(path.relative_to(loaded.base_dir))
    except ValueError:
        return str(path)


def enforce(
    loaded: LoadedSpec,
    build_args: Mapping[str, Mapping[str, str]] | None = None,
    *,
    stdout: bool = False,
    spec_bases: Mapping[str, frozenset[str]] | None = None,
) -> Report:
    """Run the checks, print them (on stdout for `pipeline preflight`, whose result they are),
    and stop the release on any error-level finding."""

    report = run_preflight(loaded, build_args, spec_bases)
    if report.findings:
        table = Table(title="Preflight")
        for column in ("Level", "Check", "Image", "Where", "Finding"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            table.add_row(f.level, f.check, f.image, f.where, f.message)
        ui.table(table, stdout=stdout)
    if report.errors:
        first = report.errors[0]
        raise GateFailed(
            f"preflight: {len(report.errors)} error(s), first {first.check} at {first.where}: "
            f"{first.message}; nothing was built"
        )
    ui.ok(f"preflight: {len(report.warnings)} warning(s), no errors")
    return report
