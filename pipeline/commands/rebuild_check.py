"""`pipeline rebuild-check REF`: rebuild a released tag from the commit its signature names and
compare the index and platform digests (exit 10 when they differ)."""

from __future__ import annotations

import argparse

from pipeline.engine.rebuild import rebuild_check


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("ref", metavar="REF", help="the release to rebuild (repo:X.Y.Z)")
    parser.add_argument("--registry", metavar="HOST[:PORT]", help="instead of the spec's registry")
    parser.add_argument(
        "--working-tree",
        action="store_true",
        help="build this checkout as it is, instead of a clean checkout of the signed commit",
    )


def run(args: argparse.Namespace) -> int:
    rebuild_check(
        ref=args.ref,
        spec=getattr(args, "spec", None),
        registry=args.registry,
        working_tree=args.working_tree,
    )
    return 0
