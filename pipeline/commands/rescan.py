"""`pipeline rescan [REF…]`: scan released versions again with today's vulnerability DB.

REF is a version tag (`repo:1.2.3` or `host/repo:1.2.3`); with none, every version tag of the
spec's repositories. The new results are attested; exit 8 when a released image no longer meets
the policy (the findings new since the release are listed).
"""

from __future__ import annotations

import argparse

from pipeline.engine.rescan import run_rescan


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "refs", metavar="REF", nargs="*", help="version tags to rescan (default: every release)"
    )
    parser.add_argument("--registry", metavar="HOST[:PORT]", help="instead of the spec's registry")


def run(args: argparse.Namespace) -> int:
    run_rescan(refs=args.refs, spec=getattr(args, "spec", None), registry=args.registry)
    return 0
