"""`pipeline sandbox up|down|status`: the built-in loopback registry, base image and Trivy DB.

`up` is what a release against the `local` registry does by itself; running it first only moves
the slow part (building the base image) out of the release.
"""

from __future__ import annotations

import argparse

from pipeline import ui
from pipeline.adapters.runner import Runner
from pipeline.sandbox import local


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))


def run(args: argparse.Namespace) -> int:

    if args.action == "down":
        stopped = local.down()
        ui.ok("built-in registry stopped" if stopped else "built-in registry was not running")
        return 0
    if args.action == "status":
        server = local.running_registry()
        if server is None:
            ui.info("built-in registry: not running (a release against `local` starts it)")
        else:
            ui.info(
                f"built-in registry: https://{server.host} (pid {server.pid}, data {server.folder})"
            )
        return 0
    provisioned = local.up(Runner())
    ui.ok(f"registry:      https://{provisioned.registry.host}")
    ui.ok(f"base image:    {provisioned.base_image}")
    ui.ok(f"Trivy DB:      {provisioned.db_repository}")
    ui.info(f"DOCKER_CONFIG={provisioned.docker_config}")
    if provisioned.ca_bundle:
        ui.info(f"SSL_CERT_FILE={provisioned.ca_bundle}")
    return 0
