"""`pipeline plan`: the dry run: what would be built, tagged, scanned and signed (no tool runs)."""

from __future__ import annotations

import argparse
import json
import os

from pipeline import ui
from pipeline.engine.loading import load_release
from pipeline.plan import make_plan, plan_json, plan_lines, resolve_registry_host


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--registry", metavar="HOST[:PORT]", help="plan for this registry")


def run(args: argparse.Namespace) -> int:

    loaded, context, tagset = load_release(
        getattr(args, "spec", None), os.environ, on_warning=ui.warn
    )
    host = resolve_registry_host(loaded.spec, args.registry, os.environ)
    plan = make_plan(loaded, context, tagset, host)
    if args.json:
        ui.emit_stdout(json.dumps(plan_json(plan), indent=2, sort_keys=True))
    else:
        ui.emit_stdout("\n".join(plan_lines(plan)))
    return 0
