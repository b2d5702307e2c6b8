"""`pipeline promote --tag T [--digest D]`: verify a digest, then point a floating tag at it.

Used for the production promotion (the digest from dist/state.json) and for rollbacks (an earlier
verified digest). Immutable tags (versions, sha-…) are refused: they never move.
"""

from __future__ import annotations

import argparse

from pipeline.engine.promote import promote_tag


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--tag", required=True, help="the floating tag to move (e.g. production, latest)"
    )
    parser.add_argument(
        "--digest",
        help="sha256:… to point it at (default: this run's release from dist/state.json)",
    )
    parser.add_argument("--image", help="which image of the spec (default: the only one)")
    parser.add_argument("--registry", metavar="HOST[:PORT]", help="instead of the spec's registry")


def run(args: argparse.Namespace) -> int:

    promote_tag(
        tag=args.tag,
        digest=args.digest,
        image_name=args.image,
        spec=getattr(args, "spec", None),
        registry=args.registry,
    )
    return 0
