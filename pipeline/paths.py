"""Where every stage reads and writes its files, relative to the project root.

The project root is the git repository that holds the spec (or the spec's folder outside git):
`dist/` is written there whichever folder a command runs from. The engine writes these files,
generated CI uploads and downloads them as artifacts: one definition.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

DIST = PurePosixPath("dist")
STATE = DIST / "state.json"  # what build/scan/sign hand to the next stage
PLATFORM_STATES = DIST / "platforms"  # one state file per platform built by its own job
SCAN_DIR = DIST / "scan"  # <image>/<os>-<arch>.{json,sarif,cdx.json}
REPORT = DIST / "release.json"
SUMMARY = DIST / "summary.md"  # the Markdown summary (also $GITHUB_STEP_SUMMARY on GitHub)
PUBLIC_KEY = DIST / "cosign.pub"  # the public key this release verifies with (not a secret)
DOTENV = DIST / "release.env"  # GitLab dotenv report: digest and tags for later jobs
GITLAB_SCANNING_REPORT = DIST / "gl-container-scanning-report.json"
# The hash-locked requirements generated CI installs the tool from (`pipeline workflows` writes
# it at the project root, beside the spec's CI files).
LOCK_FILE = PurePosixPath("pipeline.lock")


def platform_slug(platform: str) -> str:
    """`linux/arm/v7` -> `linux-arm-v7`: safe in file and artifact names."""
    return platform.replace("/", "-")


def platform_state(platform: str) -> PurePosixPath:
    return PLATFORM_STATES / f"{platform_slug(platform)}.json"


def cache_dir() -> Path:
    """Where slow fixtures and tool caches live between runs: $XDG_CACHE_HOME/pipeline."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline"


def project_root(start: Path) -> Path:
    """The top of the git repository holding `start` (a `.git` folder or file), else `start`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start
