"""The built-in `local` registry and what an offline machine needs around it.

`up()` starts (or finds again) a TLS + password registry on loopback that outlives the command, so
the `cosign verify` printed at the end of a release still works afterwards; `down()` stops it.
`provision()` makes any loopback registry usable by every tool (docker trusts its CA, one
isolated DOCKER_CONFIG is logged in, cosign and Trivy get a CA bundle) and, on demand, fills it
with the locally built base image and the fixture Trivy DB. The test bench calls the same
`provision()` on its own per-run registries. On demand `up()` also serves Docker Hub names the
sandbox can make (`hubmirror`: locally built stand-ins for `debian:bookworm[-slim]`).

Everything lives in `sandbox_dir()` (PIPELINE_SANDBOX_DIR, else ~/.cache/pipeline/sandbox), so a
test can run a sandbox of its own and stop it; the slow caches (root filesystems) are shared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline import ui
from pipeline.adapters.cosign import Cosign
from pipeline.adapters.docker_cli import DockerCli
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.refs import split_host
from pipeline.sandbox import baseimage, hubmirror, trivydb
from pipeline.sandbox.cache import cache_dir
from pipeline.sandbox.registry import RegistryServer, free_port, start_registry, trust_in_docker
from pipeline.secrets import register

BASE_REPOSITORY = "pipeline/base/debian"
BASE_TAG = "bookworm"
DB_REPOSITORY = "pipeline/trivy-db"
SYSTEM_CA_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
)


SANDBOX_DIR_ENV = "PIPELINE_SANDBOX_DIR"


def sandbox_dir() -> Path:
    return Path(os.environ.get(SANDBOX_DIR_ENV) or cache_dir() / "sandbox")


@dataclass(frozen=True)
class Provisioned:
    """A loopback registry every tool can use, and what was put into it."""

    registry: RegistryServer
    docker_config: Path  # DOCKER_CONFIG logged in to the registry
    ca_bundle: Path | None  # SSL_CERT_FILE for cosign and Trivy (system CAs + the registry's)
    base_image: str | None = None  # host/repo@sha256:… (multi-arch index)
    db_repository: str | None = None  # host/repo for trivy --db-repository
    hub_mirror: str | None = None  # http://127.0.0.1:PORT: dockerd's mirror for docker.io names

    def tool_env(self) -> dict[str, str]:
        env = {"DOCKER_CONFIG": str(self.docker_config)}
        if self.ca_bundle is not None:
            env["SSL_CERT_FILE"] = str(self.ca_bundle)
        return env


@dataclass(frozen=True)
class SigningKey:
    key: Path
    public_key: Path
    password: str

    def __post_init__(self) -> None:
        register(self.password)

    def __repr__(self) -> str:
        return f"SigningKey(key={str(self.key)!r}, password='***')"


def ca_bundle(registry: RegistryServer, folder: Path) -> Path | None:
    """System CAs plus the registry's CA: cosign and Trivy read SSL_CERT_FILE."""
    if registry.ca_file is None:
        return None
    system = next((p for p in SYSTEM_CA_BUNDLES if p.is_file()), None)
    text = (system.read_text() if system else "") + "\n" + registry.ca_file.read_text()
    bundle = folder / "ca-bundle.pem"
    bundle.write_text(text)
    return bundle


def login(registry: RegistryServer, docker_config: Path, runner: Runner) -> None:
    """docker login into an isolated config (skipped when it already holds this registry)."""
    docker_config.mkdir(parents=True, exist_ok=True)
    docker_config.chmod(0o700)
    config = docker_config / "config.json"
    if config.is_file() and registry.host in json.loads(config.read_text()).get("auths", {}):
        return
    if registry.username and registry.password:
        DockerCli(runner.with_env(DOCKER_CONFIG=str(docker_config))).login(
            registry.host, registry.username, registry.password
        )
    else:
        config.write_text(json.dumps({"auths": {}}) + "\n")


def provision(
    registry: RegistryServer,
    folder: Path,
    runner: Runner,
    *,
    base: bool = True,
    trivy_db: bool = True,
) -> Provisioned:

    trust_in_docker(registry)
    docker_config = folder / "docker"
    login(registry, docker_config, runner)
    bundle = ca_bundle(registry, folder)
    env = {"DOCKER_CONFIG": str(docker_config)}
    if bundle is not None:
        env["SSL_CERT_FILE"] = str(bundle)
    tools = runner.with_env(**env)
    base_ref = None
    if base:
        digest = baseimage.ensure_base_image(registry.client(), BASE_REPOSITORY, BASE_TAG, tools)
        base_ref = f"{registry.host}/{BASE_REPOSITORY}@{digest}"
    db_ref = None
    if trivy_db:
        trivydb.ensure_published(registry, DB_REPOSITORY, tools)
        db_ref = f"{registry.host}/{DB_REPOSITORY}"
    return Provisioned(
        registry=registry,
        docker_config=docker_config,
        ca_bundle=bundle,
        base_image=base_ref,
        db_repository=db_ref,
    )


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _password_file(folder: Path) -> Path:
    return folder / "registry.password"


def running_registry(folder: Path | None = None) -> RegistryServer | None:
    folder = folder or sandbox_dir()
    state = folder / "registry.json"
    if not state.is_file():
        return None
    secret = _password_file(folder)
    password = secret.read_text().strip() if secret.is_file() else None
    server = RegistryServer.load(state, password)
    return server if server.alive() else None


def up(
    runner: Runner,
    *,
    base: bool = True,
    trivy_db: bool = True,
    hub_tags: tuple[str, ...] = (),
    hub_platforms: tuple[str, ...] = hubmirror.PLATFORMS,
) -> Provisioned:
    """The built-in registry, started once and reused by every later command until `down()`.

    With `hub_tags` (`bookworm-slim`…), the Docker Hub stand-in mirror too: dockerd takes it as
    its docker.io mirror (SIGHUP) and holds `debian:TAG` for `hub_platforms`."""
    folder = sandbox_dir()
    with _locked(folder):
        mirror = _hub(folder, runner, hub_tags, hub_platforms) if hub_tags else None
        server = running_registry(folder)
        if server is None:
            port = _previous_port(folder)
            server = start_registry(folder / "registry", runner, port=port)
            server.save(folder / "registry.json")
            secret = _password_file(folder)
            secret.write_text(f"{server.password}\n")
            secret.chmod(0o600)
            # A new CA and password: the old docker login is stale.
            shutil.rmtree(folder / "docker", ignore_errors=True)
            ui.ok(f"built-in registry started on https://{server.host} (data: {folder})")
        provisioned = provision(server, folder, runner, base=base, trivy_db=trivy_db)
    return dataclasses.replace(provisioned, hub_mirror=mirror)


def _hub(folder: Path, runner: Runner, tags: tuple[str, ...], platforms: tuple[str, ...]) -> str:
    unmade = sorted(set(platforms) - set(hubmirror.PLATFORMS))
    if unmade:
        raise EnvironmentProblem(
            f"the sandbox makes {', '.join(hubmirror.hub_name(t) for t in tags)} for "
            f"{', '.join(hubmirror.PLATFORMS)} only, not {', '.join(unmade)}; name the base "
            "image in a build argument (Image.base_image_arg) for those platforms"
        )
    if not hubmirror.local_daemon(dict(os.environ)):
        raise EnvironmentProblem(
            "Docker Hub names are served offline through this machine's dockerd (its "
            "registry-mirrors), but DOCKER_HOST/DOCKER_CONTEXT names another daemon; pass the "
            "base image as a build argument (Image.base_image_arg)"
        )
    server = hubmirror.start(folder / "hub", runner)
    with ui.progress(f"Docker Hub stand-ins {', '.join(hubmirror.hub_name(t) for t in tags)}"):
        hubmirror.publish(server, runner, tags)
        mirror = hubmirror.url(server)
        hubmirror.use(mirror, runner)
        hubmirror.prefetch(runner, tags, platforms)
    return mirror


def _previous_port(folder: Path) -> int | None:
    """Reuse the last port when it is free, so references printed earlier stay valid."""
    state = folder / "registry.json"
    if not state.is_file():
        return None
    _, port = split_host(json.loads(state.read_text())["host"])
    if port is None:
        return free_port()

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def down() -> bool:
    """Stop the built-in registry and the Docker Hub stand-in mirror (taken out of dockerd's
    daemon.json again); True when something was running."""
    folder = sandbox_dir()
    with _locked(folder):
        stopped = False
        hub = hubmirror.running(folder / "hub")
        if hub is not None:
            hubmirror.forget(hubmirror.url(hub))
            hub.stop()
            stopped = True
        server = running_registry(folder)
        if server is not None:
            server.stop()
            stopped = True
        return stopped


def throwaway_key(runner: Runner) -> SigningKey:
    """A cosign key pair for local releases with no key configured; kept with the sandbox."""

    folder = sandbox_dir() / "cosign"
    with _locked(sandbox_dir()):
        secret = folder / "password"
        if not (folder / "cosign.key").is_file() or not secret.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            password = secrets.token_urlsafe(24)
            register(password)
            Cosign(runner).generate_key_pair(folder, password)
            secret.write_text(password + "\n")
            secret.chmod(0o600)
        password = secret.read_text().strip()
    return SigningKey(folder / "cosign.key", folder / "cosign.pub", password)
