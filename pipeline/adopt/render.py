"""The files `pipeline init` writes, as text: a commented `release.py` from what the Dockerfiles
and the git remote say, and a `noxfile.py` that registers the stage sessions.

Pure: the same facts give the same bytes (no clock, no paths of this machine), so a second
`pipeline init` finds every file current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipeline import __version__
from pipeline.adopt.dockerfiles import Dockerfile
from pipeline.adopt.remote import Destination, slug
from pipeline.spec import Image

DEFAULT_PLATFORMS: tuple[str, ...] = Image(name="x", repository="x").platforms
NOXFILE_LINES = ("from pipeline.nox_sessions import register", "register()")


@dataclass(frozen=True)
class ImageDraft:
    """One image of the spec, from one Dockerfile."""

    name: str
    dockerfile: Dockerfile

    @property
    def context(self) -> str:
        folder = self.dockerfile.folder.as_posix()
        return "." if folder in ("", ".") else folder


def image_drafts(dockerfiles: Sequence[Dockerfile], project: str) -> tuple[ImageDraft, ...]:
    """Names: the project's for a root Dockerfile, the folder's otherwise; the whole path where
    two folders share a name (`a/api`, `b/api` → `a-api`, `b-api`)."""
    short = [_short_name(d.folder, project) for d in dockerfiles]
    names = [
        name if short.count(name) == 1 else slug("-".join(d.folder.parts) or project)
        for name, d in zip(short, dockerfiles, strict=True)
    ]
    return tuple(ImageDraft(n, d) for n, d in zip(names, dockerfiles, strict=True))


def _short_name(folder: PurePosixPath, project: str) -> str:
    return slug(folder.name) if folder.parts else slug(project)


def _q(value: str) -> str:
    """A Python string literal in double quotes, as a person writes one."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tuple(values: Sequence[str]) -> str:
    inner = ", ".join(_q(v) for v in values)
    return f"({inner},)" if len(values) == 1 else f"({inner})"


def _facts(d: Dockerfile) -> str:
    stages = ", ".join(s.name or "(unnamed)" for s in d.stages)
    parts = [f"stages {stages}"]
    if d.exposes:
        parts.append(f"EXPOSE {' '.join(d.exposes)}")
    parts.append(f"USER {d.user}" if d.user else "no USER")
    if d.args:
        parts.append("ARG " + ", ".join(name for name, _ in d.args))
    return f"{d.path}: " + "; ".join(parts)


def _image_lines(draft: ImageDraft, destination: Destination, alone: bool) -> list[str]:
    d = draft.dockerfile
    lines = [f"        # {_facts(d)}", "        Image("]
    field = lines.append
    field(f"            name={_q(draft.name)},")
    repository = destination.repository(draft.name, alone=alone)
    field(f"            repository={_q(repository)},  # {destination.host}/{repository}")
    field(f"            context={_q(draft.context)},")
    if d.path.name != "Dockerfile":
        field(f"            dockerfile={_q(d.path.name)},")
    if d.target:
        field(f"            target={_q(d.target)},  # the last stage: the image released")
    if d.test_target:
        field(
            f"            test_target={_q(d.test_target)},  # built first, for this machine's"
            " platform: a failing test stops the release"
        )
    if d.base_image_arg:
        field(
            f"            base_image_arg={_q(d.base_image_arg)},  # the ARG naming the base image"
            " (PIPELINE_BASE_IMAGE sets it)"
        )
    platforms = d.platforms or DEFAULT_PLATFORMS
    why = (
        f"  # fixed by FROM --platform in {d.path.name}"
        if d.platforms
        else "  # one OCI index; arm64 builds under QEMU"
    )
    field(f"            platforms={_tuple(platforms)},{why}")
    with_defaults = [name for name, default in d.args if default is not None]
    if with_defaults:
        example = ", ".join(f"{_q(n)}: ..." for n in with_defaults[:2])
        field(f"            # build_args={{{example}}},  # override the Dockerfile's ARG defaults")
    field(
        "            # smoke_test=(...),  # a command run in each platform's image after the build"
    )
    field("        ),")
    return lines


def release_py(drafts: Sequence[ImageDraft], destination: Destination, default_branch: str) -> str:
    alone = len(drafts) == 1 and drafts[0].context == "."
    lines = [
        f'"""The release spec of {destination.project}, written by `pipeline init`'
        f" (pipeline-release {__version__}).",
        "",
        "`pipeline plan` prints what a release would build, tag, scan and sign; `pipeline release`",
        "does it (on this machine, or in the generated CI); every field is documented in",
        "pipeline.spec. Commands find this file from any folder of the repository.",
        '"""',
        "",
        "from pipeline.spec import CIOptions, Image, Registry, Spec",
        "",
        "spec = Spec(",
        f"    name={_q(destination.project)},",
    ]
    if destination.url:
        lines.append(f"    url={_q(destination.url)},")
    lines.append("    images=(")
    for draft in drafts:
        lines += _image_lines(draft, destination, alone)
    lines.append("    ),")
    lines += [f"    # {line}" for line in destination.note]
    registry = [f"host={_q(destination.host)}"]
    if destination.username_env and destination.password_env:
        registry += [
            f"username_env={_q(destination.username_env)}",
            f"password_env={_q(destination.password_env)}",
        ]
    lines.append(f"    registry=Registry({', '.join(registry)}),")
    lines += [
        "    # Tags (X.Y.Z, X.Y, X and latest from a v-tag, sha-<7>, the branch, pr-<n>),",
        "    # the Trivy gate (CRITICAL and HIGH findings with a fix stop the release) and",
        "    # cosign signing with SBOM and scan attestations keep their defaults:",
        "    # TagPolicy, ScanPolicy, SignPolicy in pipeline.spec.",
        f"    ci=CIOptions(default_branch={_q(default_branch)}),",
        ")",
        "",
    ]
    return "\n".join(lines)


def noxfile_py() -> str:
    return "\n".join(
        [
            '"""Release sessions: `nox -s release`, `nox -s build`, … (by `pipeline init`).',
            "",
            "Each runs `pipeline <stage>` of the pipeline-release installed with nox;",
            '`nox -l` lists them. `register(install="pinned")` installs exactly that',
            "version into each session's venv instead (from pipeline.lock when present).",
            '"""',
            "",
            *NOXFILE_LINES,
            "",
        ]
    )


def has_sessions(noxfile: str) -> bool:
    """Whether an existing noxfile already registers the stage sessions."""
    return "pipeline.nox_sessions" in noxfile and "register(" in noxfile
