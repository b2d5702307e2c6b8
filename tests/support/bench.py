"""The bench: real tools on this machine, brought up once per test session (the fixtures that
start it are in tests/integration/conftest.py).

- a distribution registry on 127.0.0.1 with TLS from a CA made for this run, bcrypt htpasswd auth
  and deletes enabled; docker, cosign and Trivy trust its CA and log in through one isolated
  DOCKER_CONFIG;
- a second registry (plain HTTP, loopback) for promotion and mirror tests;
- the multi-arch base image (cached tarballs) and two Trivy DBs published into the first: the
  sandbox's own (valid, no advisory: what a user's offline release scans against) and the bench's
  planted one (tests/support/data/trivy-db-planted.yaml), which `env()` points every release at;
- a cosign key pair made for this run, its password only in the environment.
A missing tool FAILS the session (never a skip): a green run must mean the tools really ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.adapters.cosign import Cosign
from pipeline.adapters.registry import RegistryClient
from pipeline.adapters.runner import Runner
from pipeline.sandbox.local import Provisioned
from pipeline.sandbox.registry import RegistryServer
from pipeline.sandbox.trivydb import ensure_published, planted

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
# The planted advisories (fake CVE-2099-* on packages of the base image) and the accepted risks
# the release tests' repositories carry for two of them.
PLANTED_DB_SOURCE = (DATA / "trivy-db-planted.yaml").read_text()
PLANTED = planted(PLANTED_DB_SOURCE)
PLANTED_DB_REPOSITORY = "bench/planted/trivy-db"  # Trivy pulls it as …/trivy-db/…
PLANTED_IGNORE_FILE = DATA / "trivyignore-planted.yaml"
REQUIRED_TOOLS = ("docker", "cosign", "trivy", "docker-registry", "mmdebstrap", "go", "git")


@dataclass(frozen=True)
class Bench:
    folder: Path
    registry: RegistryServer  # TLS + password
    plain: RegistryServer  # plain HTTP, no auth
    provisioned: Provisioned
    cosign_key: Path
    cosign_pub: Path
    cosign_password: str
    planted_db: str  # host/repo of the DB with planted advisories

    @property
    def sandbox_db(self) -> str:
        """The sandbox's own DB (no advisory), as the built-in registry serves it."""
        assert self.provisioned.db_repository
        return self.provisioned.db_repository

    @property
    def base_image(self) -> str:
        assert self.provisioned.base_image
        return self.provisioned.base_image

    @property
    def db_repository(self) -> str:
        """The DB the bench's releases scan against: the planted one."""
        return self.planted_db

    def client(self, *, anonymous: bool = False) -> RegistryClient:
        return self.registry.client(anonymous=anonymous)

    def tool_env(self) -> dict[str, str]:
        """DOCKER_CONFIG and SSL_CERT_FILE: what docker, cosign and Trivy need for the bench."""
        return self.provisioned.tool_env()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a `pipeline` process runs with against the bench registry."""
        env = {
            **os.environ,
            **self.tool_env(),
            "PIPELINE_REGISTRY": self.registry.host,
            "PIPELINE_REGISTRY_CA": str(self.registry.ca_file),
            "PIPELINE_REGISTRY_USERNAME": self.registry.username or "",
            "PIPELINE_REGISTRY_PASSWORD": self.registry.password or "",
            "PIPELINE_BASE_IMAGE": self.base_image,
            "PIPELINE_TRIVY_DB_REPOSITORY": self.db_repository,
            # The bench is a sandbox: its fixture DB and base are allowed (fail-closed tests
            # take this away).
            "PIPELINE_OFFLINE_FIXTURES": "1",
            "COSIGN_KEY": str(self.cosign_key),
            "COSIGN_PUBLIC_KEY": str(self.cosign_pub),
            "COSIGN_PASSWORD": self.cosign_password,
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        for name in ("GITHUB_ACTIONS", "GITLAB_CI", "CI", "GITHUB_STEP_SUMMARY"):
            env.pop(name, None)
        env.update(extra)
        return env

    def cosign(self, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        """Run cosign against the bench (its CA and login); the caller checks the result."""
        return subprocess.run(
            ["cosign", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def verify_signature(
        self, ref: str, public_key: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`cosign verify` of `ref` with the bench key (or `public_key`), JSON on stdout."""
        key = public_key or self.cosign_pub
        return self.cosign(
            "verify", "--key", str(key), "--insecure-ignore-tlog=true", "--output", "json", ref
        )

    def pipeline(
        self,
        *args: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: int = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m pipeline ARGS` as a user would, black-box."""
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=cwd,
            env=dict(env) if env is not None else self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def release_on_plain(self, project: Path, spec: str) -> None:
        """Release the project's commit on this machine, to the plain registry (what a CI run's
        digests are compared with), the sandbox's DB standing in."""
        local = self.pipeline(
            "release",
            "--spec",
            spec,
            cwd=project,
            env=self.env(
                PIPELINE_REGISTRY=self.plain.host,
                PIPELINE_REGISTRY_CA="",
                PIPELINE_TRIVY_DB_REPOSITORY=self.sandbox_db,
            ),
        )
        assert local.returncode == 0, local.stderr[-4000:]


def publish_planted_db(provisioned: Provisioned, runner: Runner) -> str:
    """Publish the planted DB into a provisioned registry; its `host/repo` for --db-repository."""
    tools = runner.with_env(**provisioned.tool_env())
    ensure_published(provisioned.registry, PLANTED_DB_REPOSITORY, tools, text=PLANTED_DB_SOURCE)
    return f"{provisioned.registry.host}/{PLANTED_DB_REPOSITORY}"


def key_pair(folder: Path, password: str) -> tuple[Path, Path]:
    """A cosign key pair made now (keys are never committed), through the product's adapter."""
    return Cosign(Runner(echo=False)).generate_key_pair(folder, password)


def require_tools() -> None:
    path = Runner().env["PATH"]  # the runner's own rule: this interpreter's bin/ comes first
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=path) is None]
    if missing:
        pytest.fail(
            f"bench tools missing: {', '.join(missing)} (run `nox -s toolchain`); "
            "integration tests never skip",
            pytrace=False,
        )
