"""`pipeline merge`: Join per-platform builds from separate jobs into one index."""

from __future__ import annotations

import argparse

from pipeline.commands import _stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _stages.add_stage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _stages.run(args, ("merge",))
