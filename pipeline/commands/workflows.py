"""`pipeline workflows [--check] [--install]`: write the CI files generated from the spec.

`--check` changes nothing and fails (StaleFiles, with a unified diff) when the committed files
differ from what the spec generates now; the project's own test suite runs it.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from pipeline import ui
from pipeline.emit import INSTALL_TARGETS, generate
from pipeline.errors import StaleFiles
from pipeline.specload import load


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--check", action="store_true", help="fail with a diff if files are stale")
    parser.add_argument(
        "--install",
        action="store_true",
        help="also copy them to .github/workflows/release.yml and .gitlab-ci.yml",
    )
    parser.add_argument(
        "--root", type=Path, help="repository root (default: the folder of pyproject.toml or .git)"
    )


def repo_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return start


def run(args: argparse.Namespace) -> int:

    loaded = load(getattr(args, "spec", None))
    root = (args.root or repo_root(loaded.base_dir)).resolve()
    files = generate(loaded, root)
    if args.check:
        diffs: list[str] = []
        for relative, text in files.items():
            path = root / relative
            current = path.read_text() if path.is_file() else ""
            if current != text:
                diffs += difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=f"{relative} (committed)",
                    tofile=f"{relative} (from the spec)",
                )
        if diffs:
            ui.emit_stdout("".join(diffs))
            raise StaleFiles(
                "generated CI files are stale (diff above); run `nox -s workflows` and commit"
            )
        ui.ok(f"{len(files)} generated file(s) are current")
        return 0
    for relative, text in files.items():
        targets = [relative] + ([INSTALL_TARGETS[relative]] if args.install else [])
        for target in targets:
            path = root / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            ui.ok(f"wrote {target}")
    return 0
