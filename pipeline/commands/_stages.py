"""Shared arguments and the one runner for the stage verbs (build, merge, scan, sign, publish,
release): each verb module is two lines on top of this."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_stage_arguments(parser: argparse.ArgumentParser, *, platform: bool = False) -> None:
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
    parser.add_argument("--dist", type=Path, help="where reports and state go (default: ./dist)")
    if platform:
        parser.add_argument(
            "--platform",
            action="append",
            default=[],
            metavar="OS/ARCH",
            help="build only this platform (a per-platform CI job; `merge` joins them)",
        )


def run(args: argparse.Namespace, stages: Sequence[str]) -> int:
    from pipeline.engine.run import Options, run_stages
    from pipeline.validate import check_platform_arguments

    platforms = tuple(getattr(args, "platform", []) or ())
    check_platform_arguments(platforms, "--platform", at_most=1)  # before any login or build
    options = Options(
        spec=getattr(args, "spec", None),
        registry=args.registry,
        allow_dirty=args.allow_dirty,
        platforms=platforms,
        dist=args.dist.resolve() if args.dist else None,
    )
    run_stages(stages, options)
    return 0
