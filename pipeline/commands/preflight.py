"""`pipeline preflight`: Dockerfile and build-context checks, before any build."""

from __future__ import annotations

import argparse

from pipeline import imagegraph
from pipeline.preflight import enforce
from pipeline.specload import load


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    del parser, verb  # no options of its own: the spec's preflight policy decides


def run(args: argparse.Namespace) -> int:

    loaded = load(getattr(args, "spec", None))
    graph = imagegraph.spec_graph(loaded, {}, {loaded.spec.registry.host})
    enforce(loaded, stdout=True, spec_bases=imagegraph.references(graph))
    return 0
