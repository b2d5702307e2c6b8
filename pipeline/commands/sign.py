"""`pipeline sign`: cosign sign the index digest, attach SBOM and scan attestations, verify."""

from __future__ import annotations

import argparse

from pipeline.commands import _stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _stages.add_stage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _stages.run(args, ("sign",))
