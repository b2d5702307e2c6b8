"""`pipeline workflows [--check] [--install]`: write the CI files generated from the spec.

`--check` changes nothing and fails (StaleFiles, with a unified diff) when the committed files
differ from what the spec generates now; the project's own test suite runs it. Both also
write or check `pipeline.lock`, the hash-locked tool the generated jobs install
(`pipeline.commands.locking`: `--check` needs no network; `--find-links DIR` locks a wheel built
here, `--relock` resolves again).

Each file lives in `workflows/` and, once installed, where the service reads it
(`.github/workflows/release.yml`, `.gitlab-ci.yml`). Both commands act on the copies that exist:
a repository set up by `pipeline init` has only the installed ones, so those are the files
written and checked; with neither present, `workflows/` is written (and checked as missing).
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path, PurePosixPath

from pipeline import paths, ui
from pipeline.commands.locking import check_lock, write_lock
from pipeline.emit import INSTALL_TARGETS, generate
from pipeline.errors import StaleFiles
from pipeline.specload import load

GENERATED_MARK = "# generated from "  # the first line of every file `generate` writes


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--check", action="store_true", help="fail with a diff if files are stale")
    parser.add_argument(
        "--install",
        action="store_true",
        help="also copy them to .github/workflows/release.yml and .gitlab-ci.yml",
    )
    parser.add_argument(
        "--root", type=Path, help="repository root (default: the git top level of the spec)"
    )
    parser.add_argument(
        "--find-links",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of wheels built here (the tool itself when it is not published)",
    )
    parser.add_argument(
        "--relock",
        action="store_true",
        help=f"resolve {paths.LOCK_FILE} again even when its inputs did not change",
    )


def run(args: argparse.Namespace) -> int:

    loaded = load(getattr(args, "spec", None))
    root = (args.root or paths.project_root(loaded.base_dir)).resolve()
    files = generate(loaded, root)
    if args.check:
        diffs: list[str] = []
        for generated, text in files.items():
            for relative in _locations(root, generated, install=False):
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
        stale_lock = check_lock(root)
        if stale_lock is not None:
            raise StaleFiles(f"{stale_lock}; run `nox -s workflows` and commit {paths.LOCK_FILE}")
        ui.ok(f"{len(files)} generated file(s) and {paths.LOCK_FILE} are current")
        return 0
    for generated, text in files.items():
        for target in _locations(root, generated, install=args.install):
            path = root / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            ui.ok(f"wrote {target}")
    write_lock(root, find_links=[d.resolve() for d in args.find_links], relock=args.relock)
    return 0


def generated_by_us(path: Path) -> bool:
    """Whether a file is one of ours (the generated header), not a hand-written CI file."""
    try:
        with path.open() as handle:
            return handle.readline().startswith(GENERATED_MARK)
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return False


def _locations(root: Path, generated: PurePosixPath, *, install: bool) -> list[PurePosixPath]:
    """Where a generated file is kept: `workflows/` unless only the installed copy exists, and
    the installed copy when it is ours (or `--install` asks for it). A hand-written
    `.gitlab-ci.yml` is never touched without `--install`."""
    installed = INSTALL_TARGETS[generated]
    ours = generated_by_us(root / installed)
    locations = [] if ours and not (root / generated).is_file() else [generated]
    if install or ours:
        locations.append(installed)
    return locations
