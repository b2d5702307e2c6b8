"""`pipeline <stage>` for every stage that runs engine steps (build, merge, scan, sign, publish,
release): which steps, in which order, comes from the stage table (`pipeline.stages`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.engine.run import Options, run_stages
from pipeline.stages import BY_NAME
from pipeline.validate import check_platform_arguments


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--registry",
        metavar="HOST[:PORT]",
        help="push to this registry instead of the spec's (also: PIPELINE_REGISTRY)",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="build from a working tree with uncommitted changes (never for a real release)",
    )
    parser.add_argument(
        "--dist", type=Path, help="where reports and state go (default: dist/ at the project root)"
    )
    if BY_NAME[verb].per_platform:
        parser.add_argument(
            "--platform",
            action="append",
            default=[],
            metavar="OS/ARCH",
            help="build only this platform (a per-platform CI job; `merge` joins them)",
        )


def run(args: argparse.Namespace) -> int:

    platforms = tuple(getattr(args, "platform", []) or ())
    check_platform_arguments(platforms, "--platform", at_most=1)  # before any login or build
    options = Options(
        spec=getattr(args, "spec", None),
        registry=args.registry,
        allow_dirty=args.allow_dirty,
        platforms=platforms,
        dist=args.dist.resolve() if args.dist else None,
    )
    run_stages(BY_NAME[args.verb].steps, options)
    return 0
