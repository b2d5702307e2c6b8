"""`pipeline build`: Multi-platform build pushed by digest only (no tag exists yet)."""

from __future__ import annotations

import argparse

from pipeline.commands import _stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _stages.add_stage_arguments(parser, platform=True)


def run(args: argparse.Namespace) -> int:
    return _stages.run(args, ("build",))
