"""`pipeline notes`: the release notes of this run, from `dist/release.json` (after publish).

Writes `dist/release-notes.md` (what the generated CI puts in a GitHub Release or a GitLab
release) and, in a GitHub job, the step outputs `version`, `<image>-repository` and
`<image>-digest` (to `$GITHUB_OUTPUT`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline import paths, ui
from pipeline.emit import notes
from pipeline.errors import StateError
from pipeline.specload import load


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--output", type=Path, help=f"where to write the notes (default: dist/{notes.NOTES_FILE})"
    )


def run(args: argparse.Namespace) -> int:
    loaded = load(getattr(args, "spec", None))
    root = paths.project_root(loaded.base_dir)
    report_path = root / paths.REPORT
    if not report_path.is_file():
        raise StateError(f"{report_path}: no release report; run `publish` first")
    report = json.loads(report_path.read_text())
    target = args.output or root / paths.DIST / notes.NOTES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(notes.render(report, loaded.spec))
    ui.ok(f"wrote {target}")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with Path(github_output).open("a") as handle:
            for key, value in notes.outputs(report).items():
                handle.write(f"{key}={value}\n")
    return 0
