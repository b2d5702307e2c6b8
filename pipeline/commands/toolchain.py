"""`pipeline toolchain`: install and start what the project needs (Debian 12, root); idempotent."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import paths, ui
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.toolchain.bootstrap import bootstrap


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        help="project root for node_modules (default: the git top level of this folder)",
    )
    parser.add_argument(
        "--for",
        dest="purpose",
        choices=("release", "local", "tests"),
        default="tests",
        help="what the machine is for: any release, a release with the built-in registry, "
        "or the test suite (default: tests, which needs everything)",
    )


def run(args: argparse.Namespace) -> int:
    root = args.root.resolve() if args.root else paths.project_root(Path.cwd())
    problems = bootstrap(Runner(), root, args.purpose)
    if problems:
        raise EnvironmentProblem(f"{len(problems)} tool(s) missing or not running (listed above)")
    ui.ok("toolchain ready")
    return 0
