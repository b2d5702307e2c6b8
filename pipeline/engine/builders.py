"""Native builders: each platform built on a host of its own, at the same time as the others.

`build.builders` maps a platform to an endpoint (`pipeline.spec.Builder`). The build is still
`docker buildx build`, only pointed elsewhere, so Docker and BuildKit do the work (no scheduler
of ours):
- a Docker host (`tcp://` with TLS, `ssh://`, `unix://`): buildx's default builder of that
  daemon, through DOCKER_HOST (and DOCKER_TLS_VERIFY with DOCKER_CERT_PATH, a folder of this
  run holding the spec's three files under the names docker reads);
- a docker context by name: DOCKER_CONTEXT (its builder is the context's `docker` driver);
- a BuildKit daemon (`driver="remote"`): a buildx builder with the remote driver, created once
  per endpoint and TLS files in this run's docker config (`pipeline-<hash>`).
The build's OCI layout comes back to this machine as for a local build; the platforms are then
merged by digest (`engine.merge.merge_layouts`, `oci.merge_indexes`, as the CI fan-out merge).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline import ui
from pipeline.adapters.docker_cli import DockerCli
from pipeline.adapters.runner import Runner
from pipeline.engine.workspace import Workspace
from pipeline.errors import SpecError
from pipeline.spec import Builder

DOCKER_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
# `none`: every platform on this machine, whatever the spec's builders say (a laptop run).
BUILDERS_ENV = "PIPELINE_BUILDERS"


def check_env(environ: Mapping[str, str]) -> None:
    value = environ.get(BUILDERS_ENV, "")
    if value not in ("", "none", "spec"):
        raise SpecError(
            f"{BUILDERS_ENV}: {value!r} is not 'none' (build every platform here) or 'spec'"
        )


@dataclass(frozen=True)
class Native:
    platform: str
    name: str  # how the log names it: the endpoint or the context
    runner: Runner  # the docker CLI's environment for this builder
    builder: str | None = None  # `buildx build --builder` (the remote driver)


def builder_name(builder: Builder) -> str:
    key = "|".join(
        str(v) for v in (builder.endpoint, builder.ca_file, builder.cert_file, builder.key_file)
    )
    return "pipeline-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def resolve(ws: Workspace, configured: Mapping[str, Builder]) -> dict[str, Native]:
    """The native builders of this run, set up once (a remote-driver builder is created)."""
    if ws.environ.get(BUILDERS_ENV) == "none":
        configured = {}
    with ws.state_lock:
        if ws.natives is None:
            ws.natives = {p: _native(ws, p, b) for p, b in sorted(configured.items())}
        return dict(ws.natives)


def _native(ws: Workspace, platform: str, builder: Builder) -> Native:
    endpoint = builder.endpoint.strip()
    files = {
        name: ws.loaded.resolve(value) if value else None
        for name, value in (
            ("ca.pem", builder.ca_file),
            ("cert.pem", builder.cert_file),
            ("key.pem", builder.key_file),
        )
    }
    base = ws.runner.without("DOCKER_HOST").without("DOCKER_CONTEXT")
    base = base.without("DOCKER_TLS_VERIFY").without("DOCKER_CERT_PATH")
    if builder.driver == "remote":
        name = builder_name(builder)
        docker = DockerCli(base)
        if not docker.builder_exists(name):
            docker.create_remote_builder(
                name,
                endpoint,
                ca_file=files["ca.pem"],
                cert_file=files["cert.pem"],
                key_file=files["key.pem"],
            )
        ui.info(f"  {platform}: builds on the BuildKit at {endpoint} (buildx builder {name})")
        return Native(platform, endpoint, base, builder=name)
    if "://" not in endpoint:
        ui.info(f"  {platform}: builds on docker context {endpoint}")
        return Native(platform, f"context {endpoint}", base.with_env(DOCKER_CONTEXT=endpoint))
    env = {"DOCKER_HOST": endpoint}
    if any(files.values()):
        folder = ws.scratch / "builders" / builder_name(builder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            if source is not None:
                shutil.copyfile(source, folder / name)
                (folder / name).chmod(0o600)
        env |= {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(folder)}
    ui.info(f"  {platform}: builds on the Docker host {endpoint}")
    return Native(platform, endpoint, base.with_env(**env))


def describe(natives: Mapping[str, Native]) -> str:
    return ", ".join(f"{p} on {n.name}" for p, n in sorted(natives.items())) or "this machine"
