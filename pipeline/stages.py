"""The release stages: one typed table, read by the CLI (verbs and help), the nox sessions, the
engine (which steps a verb runs, in which order) and the CI emitters (the command a job runs).

Standard library only, so a noxfile can read it before any environment exists.

A stage is what a person or a CI job runs (`pipeline build`, `nox -s build`); a step is what the
engine does (`pipeline release` runs the steps preflight, build, scan, sign and publish in one
process). Stages without steps (verify, promote, rescan…) are commands of their own.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal, get_args

StageName = Literal[
    "preflight",
    "build",
    "merge",
    "scan",
    "sign",
    "publish",
    "release",
    "verify",
    "promote",
    "rescan",
    "rebuild-check",
    "notes",
]
Step = Literal["preflight", "build", "merge", "scan", "sign", "publish"]

STEPS: tuple[Step, ...] = get_args(Step)


@dataclass(frozen=True)
class Stage:
    name: StageName
    summary: str  # one line: `pipeline --help`, the nox session's docstring, the README table
    steps: tuple[Step, ...] = ()  # engine steps, in order; empty: a command of its own
    per_platform: bool = False  # takes `--platform P` (one CI job per native runner)

    @property
    def module(self) -> str:
        """The `pipeline.commands` module that implements the verb."""
        return "stage" if self.steps else self.name.replace("-", "_")

    @property
    def reports(self) -> bool:
        """Whether the run ends with the release report (release.json, summary, dotenv)."""
        return "publish" in self.steps


STAGES: tuple[Stage, ...] = (
    Stage(
        name="preflight",
        summary="check Dockerfiles and build contexts against the preflight policy",
    ),
    Stage(
        name="build",
        summary="multi-platform build pushed by digest only, no tag (`--platform P`: one platform)",
        steps=("build",),
        per_platform=True,
    ),
    Stage(
        name="merge",
        summary="join per-platform builds from separate jobs into one index",
        steps=("merge",),
    ),
    Stage(
        name="scan",
        summary="Trivy scan of every platform image, then the vulnerability gate",
        steps=("scan",),
    ),
    Stage(
        name="sign",
        summary="cosign sign the scanned index digest and attest SBOM and scan, then verify",
        steps=("sign",),
    ),
    Stage(
        name="publish",
        summary="point the computed tags at the signed digest (immutable tags never move)",
        steps=("publish",),
    ),
    Stage(
        name="release",
        summary="the whole release in one process: preflight, build, scan, sign, publish",
        steps=("preflight", "build", "scan", "sign", "publish"),
    ),
    Stage(
        name="verify",
        summary="check signature, attestations and attested scan of an image (default: this run's)",
    ),
    Stage(
        name="promote",
        summary="verify a released digest, then point a floating tag at it (production, rollback)",
    ),
    Stage(
        name="rebuild-check",
        summary="rebuild a released tag from its signed commit and compare the digests",
    ),
    Stage(
        name="rescan",
        summary="scan released versions again with today's DB; attest, and fail on new findings",
    ),
    Stage(
        name="notes",
        summary="release notes from dist/release.json: digests per platform, cosign verify, scan",
    ),
)

BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}


def stage(name: StageName) -> Stage:
    return BY_NAME[name]


def session_command(name: StageName, *args: str) -> str:
    """The shell line a CI job runs for a stage: `nox -s build -- --platform linux/arm64`.

    Arguments are quoted (`shlex.join`) unless they are shell variables the job sets (`"$TAG"`),
    which are passed through as written."""
    line = f"nox -s {stage(name).name}"
    if args:
        line += " -- " + " ".join(a if a.startswith('"$') else shlex.quote(a) for a in args)
    return line
