"""`pipeline sandbox up|down|status`: the built-in loopback registry, base image and Trivy DB,
and the Docker Hub stand-ins (`debian:bookworm`, `debian:bookworm-slim`, built here).

`up` is what a release against the `local` registry does by itself; running it first only moves
the slow part (building the base images) out of the release. `up --docker-hub` also makes the
stand-ins and has dockerd take their mirror; `down` stops everything and takes the mirror out of
dockerd's daemon.json again.
"""

from __future__ import annotations

import argparse

from pipeline import ui
from pipeline.adapters.runner import Runner
from pipeline.sandbox import hubmirror, local


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument(
        "--docker-hub",
        action="store_true",
        help="with up: also serve the locally built stand-ins for "
        + ", ".join(hubmirror.hub_name(t) for t in hubmirror.TAGS)
        + " (amd64, arm64) as dockerd's docker.io mirror",
    )


def run(args: argparse.Namespace) -> int:

    if args.action == "down":
        stopped = local.down()
        ui.ok("built-in sandbox stopped" if stopped else "built-in sandbox was not running")
        return 0
    if args.action == "status":
        server = local.running_registry()
        if server is None:
            ui.info("built-in registry: not running (a release against `local` starts it)")
        else:
            ui.info(
                f"built-in registry: https://{server.host} (pid {server.pid}, data {server.folder})"
            )
        hub = hubmirror.running(local.sandbox_dir() / "hub")
        if hub is not None:
            ui.info(f"Docker Hub stand-ins: {hubmirror.url(hub)} (dockerd's docker.io mirror)")
        return 0
    tags = tuple(hubmirror.TAGS) if args.docker_hub else ()
    provisioned = local.up(Runner(), hub_tags=tags)
    ui.ok(f"registry:      https://{provisioned.registry.host}")
    ui.ok(f"base image:    {provisioned.base_image}")
    ui.ok(f"Trivy DB:      {provisioned.db_repository} (no advisories: a sandbox stand-in)")
    if provisioned.hub_mirror:
        ui.ok(f"Docker Hub:    {provisioned.hub_mirror} (locally built debian stand-ins)")
    ui.info(f"DOCKER_CONFIG={provisioned.docker_config}")
    if provisioned.ca_bundle:
        ui.info(f"SSL_CERT_FILE={provisioned.ca_bundle}")
    return 0
