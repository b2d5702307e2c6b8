"""`pipeline publish`: Point the computed tags at the scanned and signed digest."""

from __future__ import annotations

import argparse

from pipeline.commands import _stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _stages.add_stage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _stages.run(args, ("publish",))
