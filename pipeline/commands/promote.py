"""`pipeline promote --tag T [--version V | --digest D] [--image NAME…]`: move a floating tag to
a published release.

Without `--version` or `--digest`, the release of this run (dist/state.json) is promoted: every
image of the set, or the images named. A rollback names an earlier `--version` (or one image's
`--digest`). Only a digest that one of the spec's version tags points at in the registry, and
that verifies, is a target; the tags move once every image verified. Immutable tags (versions,
sha-…) are refused: they never move.
"""

from __future__ import annotations

import argparse

from pipeline.engine.promote import promote_tag


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--tag", required=True, help="the floating tag to move (e.g. production, latest)"
    )
    parser.add_argument(
        "--version",
        help="the released version to point it at (a rollback; default: this run's release)",
    )
    parser.add_argument("--digest", help="sha256:… of one image's published release (with --image)")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        help="an image of the spec (repeatable; default: every image of the release)",
    )
    parser.add_argument("--registry", metavar="HOST[:PORT]", help="instead of the spec's registry")


def run(args: argparse.Namespace) -> int:
    promote_tag(
        tag=args.tag,
        digest=args.digest,
        version=args.version,
        image_names=args.image,
        spec=getattr(args, "spec", None),
        registry=args.registry,
    )
    return 0
