"""Integration fixtures: the bench (tests/support/bench.py), started once per test session."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.adapters.runner import Runner
from pipeline.sandbox.local import provision
from pipeline.sandbox.registry import DOCKER_CERTS_DIR, start_registry, untrust_in_docker
from pipeline.secrets import register
from tests.support.bench import Bench, key_pair, publish_planted_db, require_tools
from tests.support.dockerhost import docker_host  # noqa: F401  (fixture: a second Docker host)
from tests.support.faultproxy import FaultProxy, Schedule
from tests.support.sigstore import sigstore  # noqa: F401  (a fixture for the keyless tests)


@pytest.fixture(scope="session")
def runner() -> Runner:
    return Runner(echo=False)


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory, runner: Runner) -> Iterator[Bench]:
    require_tools()
    folder = tmp_path_factory.mktemp("bench")
    registry = start_registry(folder / "tls-registry", runner, tls=True, auth=True)
    plain = start_registry(folder / "plain-registry", runner, tls=False, auth=False)
    try:
        provisioned = provision(registry, folder, runner, base=True, trivy_db=True)
        planted_db = publish_planted_db(provisioned, runner)
        password = secrets.token_urlsafe(16)
        register(password)
        key, pub = key_pair(folder / "cosign", password)
        yield Bench(
            folder=folder,
            registry=registry,
            plain=plain,
            provisioned=provisioned,
            cosign_key=key,
            cosign_pub=pub,
            cosign_password=password,
            planted_db=planted_db,
        )
    finally:
        registry.stop()
        plain.stop()
        untrust_in_docker(registry)


@pytest.fixture(scope="session")
def ci_python() -> Path:
    """`bin/` of a Python that stands in for a CI runner's Python (setup-python, the GitLab job
    image): the generated jobs `pip install` nox into it themselves. Kept between runs."""
    from pipeline.sandbox.cache import cache_dir
    from pipeline.toolchain.requirements import NOX_REQUIREMENT

    folder = cache_dir() / "ci-python"
    if not (folder / "bin" / "nox").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", NOX_REQUIREMENT],
            check=True,
        )
    return folder / "bin"


@pytest.fixture
def proxy(bench: Bench) -> Iterator[FaultProxy]:
    """A fault-injecting TLS proxy in front of the bench registry (tests/support/faultproxy.py)."""
    tls = bench.registry.folder / "tls"
    with FaultProxy(
        f"https://{bench.registry.host}",
        cert=tls / "server.crt",
        key=tls / "server.key",
        ca_file=bench.registry.ca_file,
        schedule=Schedule(),
    ) as running:
        # dockerd (smoke-test pulls) trusts the proxy as it trusts the registry.
        trust = DOCKER_CERTS_DIR / running.host / "ca.crt"
        trust.parent.mkdir(parents=True, exist_ok=True)
        trust.write_bytes((bench.registry.ca_file or Path()).read_bytes())
        yield running
        trust.unlink()
        trust.parent.rmdir()
