"""Secrets never leave the process: canary values through full releases, passing and failing.

A registry is started whose password is a canary, the cosign key is encrypted with a canary
password, and CI tokens are canaries. Releases that pass and releases that fail at every stage
that touches a secret (registry login, signing, the gate) run black-box; then every byte they
wrote is searched: stdout, stderr, every file in the repository (dist/, reports, the step summary,
generated CI YAML) and everything left in their TMPDIR. Each canary is searched in plain form and
in the base64 `user:password` form a docker config or an Authorization header holds.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.adapters.runner import Runner
from pipeline.sandbox.local import provision
from pipeline.sandbox.registry import start_registry, untrust_in_docker
from tests.support.bench import ROOT, Bench, key_pair, publish_planted_db
from tests.support.release_repo import make_repo


def _canary(kind: str) -> str:
    return f"CANARY-{kind}-{secrets.token_hex(8)}"


@dataclass
class Canaries:
    registry_password: str = field(default_factory=lambda: _canary("REGISTRY"))
    wrong_registry_password: str = field(default_factory=lambda: _canary("WRONGREG"))
    cosign_password: str = field(default_factory=lambda: _canary("COSIGN"))
    wrong_cosign_password: str = field(default_factory=lambda: _canary("WRONGCOSIGN"))
    github_token: str = field(default_factory=lambda: _canary("GHTOKEN"))
    gitlab_token: str = field(default_factory=lambda: _canary("GLTOKEN"))
    oidc_token: str = field(default_factory=lambda: _canary("OIDC"))

    def forms(self, username: str) -> dict[str, str]:
        """Every canary, plain and as base64(`username:value`)."""
        found: dict[str, str] = {}
        for name, value in vars(self).items():
            found[name] = value
            basic = base64.b64encode(f"{username}:{value}".encode()).decode()
            found[f"{name} (basic auth)"] = basic
        return found


@pytest.fixture(scope="module")
def canaries() -> Canaries:
    return Canaries()


@pytest.fixture(scope="module")
def canary_bench(
    bench: Bench, canaries: Canaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bench]:
    """A bench of its own whose registry password and cosign key password are canaries."""
    folder = tmp_path_factory.mktemp("canary-bench")
    runner = Runner(echo=False)
    registry = start_registry(
        folder / "registry", runner, tls=True, auth=True, password=canaries.registry_password
    )
    try:
        provisioned = provision(registry, folder, runner)
        key, pub = key_pair(folder / "cosign", canaries.cosign_password)
        yield Bench(
            folder=folder,
            registry=registry,
            plain=bench.plain,
            provisioned=provisioned,
            cosign_key=key,
            cosign_pub=pub,
            cosign_password=canaries.cosign_password,
            planted_db=publish_planted_db(provisioned, runner),
        )
    finally:
        registry.stop()
        untrust_in_docker(registry)


def _scan_tree(folder: Path, forms: dict[str, str]) -> list[str]:
    leaks = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        leaks += [f"{name} in {path}" for name, value in forms.items() if value.encode() in data]
    return leaks


def test_canaries_appear_nowhere_in_passing_and_failing_releases(
    canary_bench: Bench, canaries: Canaries, tmp_path: Path
) -> None:
    bench = canary_bench
    repo = make_repo(tmp_path / "repo", "secrets/app")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    runner_files = tmp_path / "runner"  # where a runner keeps its step summary: not the checkout
    runner_files.mkdir()
    summary = runner_files / "step-summary.md"
    tokens = {
        "GITHUB_TOKEN": canaries.github_token,
        "CI_JOB_TOKEN": canaries.gitlab_token,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": canaries.oidc_token,
        "TMPDIR": str(tmpdir),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = []

    def run(label: str, *args: str, expect: int, **extra: str) -> None:
        result = bench.pipeline(*args, cwd=repo.path, env=bench.env(**tokens, **extra))
        outputs.append((label, result))
        assert result.returncode == expect, f"{label}: {result.stderr[-3000:]}"

    # 1. a full release that passes, then a verify of it
    repo.tag("v1.0.0")
    run("release", "release", expect=0)
    run("verify", "verify", f"{bench.registry.host}/{repo.repository}:1.0.0", expect=0)
    run("plan", "plan", expect=0)
    # A current lock beside the CI files: `workflows` keeps it (no resolution, no network).
    shutil.copy(ROOT / "pipeline.lock", repo.path / "pipeline.lock")
    run("workflows", "workflows", "--root", str(repo.path), expect=0)
    # 2. the registry refuses a wrong password (the wrong one is a secret too)
    (repo.path / "app" / "VERSION.txt").write_text("1.0.1\n")
    repo.commit("1.0.1")
    repo.tag("v1.0.1")
    run(
        "wrong registry password",
        "release",
        expect=7,
        PIPELINE_REGISTRY_PASSWORD=canaries.wrong_registry_password,
    )
    # 3. cosign cannot decrypt the key with a wrong password: refused before anything is built
    run(
        "wrong cosign password",
        "release",
        expect=2,
        COSIGN_PASSWORD=canaries.wrong_cosign_password,
    )
    # 4. the gate blocks (the planted CRITICAL is no longer accepted)
    repo.edit_spec('ignore_file=".trivyignore.yaml",', "")
    repo.commit("drop the accepted advisories")
    repo.tag("v1.0.2")
    run("gate", "release", expect=8)

    forms = canaries.forms(bench.registry.username or "")
    leaks = [
        f"{name} in the {stream} of `{label}`"
        for label, result in outputs
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr))
        for name, value in forms.items()
        if value in text
    ]
    control = tmp_path / "control"
    control.mkdir()
    (control / "leak.txt").write_text(forms["cosign_password (basic auth)"])
    assert _scan_tree(control, forms), "the search finds a planted leak"
    leaks += _scan_tree(repo.path, forms)
    leaks += _scan_tree(tmpdir, forms)
    leaks += _scan_tree(runner_files, forms)
    written = sorted(p.relative_to(repo.path) for p in (repo.path / "dist").rglob("*"))
    assert summary.is_file() and written, "the runs wrote reports: the search had material"
    assert any(p.suffix in (".yml", ".yaml") for p in repo.path.rglob("*.y*ml")), "YAML searched"
    assert leaks == [], "\n".join(leaks)
    # The secrets were really in play: the failures name the stage, with the value masked.
    stderr = {label: result.stderr for label, result in outputs}
    assert "PIPELINE_REGISTRY_PASSWORD" in stderr["wrong registry password"]
    assert (
        "error: COSIGN_PASSWORD: does not decrypt the signing key in COSIGN_KEY"
        in (stderr["wrong cosign password"])
    )
    assert "buildx" not in stderr["wrong cosign password"], "refused before any build"
