"""`pipeline verify [REF]`: signature, SBOM and vulnerability attestations, attested scan vs policy.

REF is `host[:port]/repo:tag`, `host/repo@sha256:…` or `repo:tag` (the spec's registry). With no
REF, every image this run released (dist/state.json) is verified: the CI production job does
that before promoting. Exit 0 when everything checks out; VerifyFailed's exit code and one line
naming what failed otherwise.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table

from pipeline import predicates, ui
from pipeline.engine.promote import resolve_and_verify, state_references
from pipeline.refs import ImageRef

if TYPE_CHECKING:
    from pipeline.engine.verify import Verified


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "ref", metavar="REF", nargs="?", help="image to verify (default: this run's release)"
    )
    parser.add_argument(
        "--registry", metavar="HOST[:PORT]", help="the registry of a REF without host"
    )
    parser.add_argument(
        "--allow-fixtures",
        action="store_true",
        help="accept an image scanned with the sandbox's fixture Trivy DB (never for production)",
    )


def run(args: argparse.Namespace) -> int:
    spec = getattr(args, "spec", None)
    if args.ref is not None:
        ImageRef.parse(args.ref, argument="REF")  # a malformed (or empty) REF fails before login
        refs = [args.ref]
    else:
        refs = state_references(spec=spec, registry=args.registry)
    for ref in refs:
        verified = resolve_and_verify(
            ref, spec=spec, registry=args.registry, allow_fixtures=args.allow_fixtures
        )
        show(ref, verified)
    return 0


def show(ref: str, verified: Verified) -> None:
    table = Table(title=f"Verified {ref}")
    table.add_column("Check")
    table.add_column("Result", overflow="fold")
    table.add_row("digest", verified.digest)
    table.add_row("signature", verified.signature)
    table.add_row(
        "signed as",
        f"version {verified.version or '—'}, commit {(verified.revision or '—')[:12]}",
    )
    for platform, digest in sorted(verified.platforms.items()):
        table.add_row(f"  {platform}", digest)
    table.add_row("attestations", ", ".join(verified.attestations))
    table.add_row("attested scan", verified.scan.describe())
    if verified.fixture:
        table.add_row("scan DB", "the FIXTURE DB (sandbox advisories, not real data)")
    source = predicates.provenance_source(verified.provenance)
    if source:
        table.add_row(
            "provenance",
            f"{source.get('repository') or '—'} at {str(source.get('commit'))[:12]}, built by "
            + str((verified.provenance.get("runDetails") or {}).get("builder", {}).get("id")),
        )
    ui.table(table)
    ui.ok(f"{ref} verifies")
