"""What writing `pipeline init`'s files would change, decided before anything is written.

A file that does not exist is created; one that already holds the same text is left (a second
`init` changes nothing); one that differs is left alone and its difference shown, unless
`--force` replaces it. An existing `noxfile.py` is the user's: it is never replaced; the two
lines that register the sessions are printed (and appended with `--force`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from pipeline.adopt.render import NOXFILE_LINES, has_sessions
from pipeline.preflight import Finding

NOXFILE = PurePosixPath("noxfile.py")
Status = Literal["create", "current", "differs", "add-lines"]


@dataclass(frozen=True)
class Change:
    path: PurePosixPath
    text: str  # what init writes (for `add-lines`: the existing file with the lines appended)
    existing: str | None
    status: Status

    def writes(self, *, force: bool) -> bool:
        return self.status == "create" or (force and self.status in ("differs", "add-lines"))

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                (self.existing or "").splitlines(keepends=True),
                self.text.splitlines(keepends=True),
                fromfile=f"{self.path} (in the repository)",
                tofile=f"{self.path} (from pipeline init)",
            )
        )


def plan(
    files: Mapping[PurePosixPath, str], existing: Mapping[PurePosixPath, str | None]
) -> tuple[Change, ...]:
    changes = []
    for path, text in files.items():
        current = existing.get(path)
        if current is None:
            changes.append(Change(path, text, None, "create"))
        elif path == NOXFILE:
            if has_sessions(current):
                changes.append(Change(path, current, current, "current"))
            else:
                appended = current.rstrip("\n") + "\n\n" + "\n".join(NOXFILE_LINES) + "\n"
                changes.append(Change(path, appended, current, "add-lines"))
        elif current == text:
            changes.append(Change(path, text, current, "current"))
        else:
            changes.append(Change(path, text, current, "differs"))
    return tuple(changes)


# How to fix what the preflight would refuse, per check.
FIXES = {
    "dockerignore": "add a .dockerignore beside the Dockerfile with the lines "
    ".git, .env, .env.*, *.key, *.pem (and whatever else the image does not need)",
    "non_root_user": "add `USER 10001:10001` (or a named user the image creates) to the last stage",
    "healthcheck": "add a HEALTHCHECK to the last stage (`HEALTHCHECK NONE` says there is none)",
    "no_latest_base": "name a version tag in FROM (e.g. debian:bookworm-slim)",
    "base_pinned_by_digest": "pin FROM by digest (image:tag@sha256:…) so a moved tag cannot "
    "change the image unnoticed",
    "no_secret_args": "pass the value as a build secret (Image(secrets=(BuildSecret(...),))), "
    "not an ARG or ENV default",
}


def advice(finding: Finding) -> str:
    """One line: what the preflight finds, whether it stops a release, and the fix."""
    what = "the release would stop" if finding.level == "error" else "a warning"
    fix = FIXES.get(finding.check, "see `pipeline preflight`")
    return f"{finding.where}: {finding.message} ({what}); fix: {fix}"
