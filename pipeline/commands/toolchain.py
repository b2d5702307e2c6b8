"""`pipeline toolchain`: install and start what the project needs (Debian 12, root); idempotent."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import ui
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.toolchain.bootstrap import bootstrap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="project root for node_modules (default: .)"
    )


def run(args: argparse.Namespace) -> int:
    problems = bootstrap(Runner(), args.root.resolve())
    if problems:
        raise EnvironmentProblem(f"{len(problems)} tool(s) missing or not running (listed above)")
    ui.ok("toolchain ready")
    return 0
