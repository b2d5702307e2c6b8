"""Native builders: each platform built on a host of its own at the same time, merged by digest.

Both "hosts" are on this machine here (tests/support/dockerhost.py: a second dockerd with its own
roots and TLS on loopback; tests/support/buildkitd.py: a buildkitd for buildx's remote driver),
so these prove the wiring and the digests, not the speed of a real arm64 machine. Each release
is verified, and its per-platform digests are compared with the same commit built on this
machine alone (PIPELINE_BUILDERS=none, to another registry).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.bench import Bench
from tests.support.buildkitd import BuildkitServer, buildkitd  # noqa: F401  (fixture)
from tests.support.dockerhost import DockerHost
from tests.support.release_repo import ReleaseRepo, make_repo, release_tags

_IMPORT = ("from pipeline.spec import (", "from pipeline.spec import (\n    BuildPolicy, Builder,")


def _with_builder(repo: ReleaseRepo, builder: str) -> None:
    repo.edit_spec(*_IMPORT)
    repo.edit_spec(
        "    ci=CIOptions(",
        f"    build=BuildPolicy(builders={{'linux/arm64': {builder}}}),\n    ci=CIOptions(",
    )
    repo.commit("arm64 on a builder of its own")


def _single_host_platforms(bench: Bench, repo: ReleaseRepo) -> dict[str, str]:
    """The same commit built on this machine alone, pushed to the plain registry."""
    env = bench.env(
        PIPELINE_REGISTRY=bench.plain.host, PIPELINE_REGISTRY_CA="", PIPELINE_BUILDERS="none"
    )
    result = bench.pipeline("build", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((repo.path / "dist" / "state.json").read_text())
    platforms: dict[str, str] = state["images"]["sample-app"]["platforms"]
    return platforms


def _release_and_check(
    bench: Bench, repo: ReleaseRepo, where: str
) -> subprocess.CompletedProcess[str]:
    repo.tag("v2.0.0")
    result = bench.pipeline("release", cwd=repo.path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"linux/arm64 on {where}" in result.stderr, result.stderr[-3000:]
    image = repo.report()["images"][0]
    tags = release_tags(bench.client(), repo.repository)
    assert tags["2.0.0"] == image["index_digest"]
    verified = bench.pipeline(
        "verify", f"{bench.registry.host}/{repo.repository}:2.0.0", cwd=repo.path
    )
    assert verified.returncode == 0, verified.stderr[-3000:]
    index = bench.client().resolve(repo.repository, "2.0.0")
    assert index is not None and index.is_index
    assert len(index.document["manifests"]) == 2, "both platforms, merged into one index"
    built_here = _single_host_platforms(bench, repo)
    assert image["platforms"] == built_here, "the same per-platform digests as one host's"
    return result


def test_arm64_on_a_second_docker_host_over_tls(
    bench: Bench, docker_host: DockerHost, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "tests/native-tcp")
    certs = docker_host.cert_path
    _with_builder(
        repo,
        f"Builder(endpoint='{docker_host.host}', ca_file='{certs / 'ca.pem'}', "
        f"cert_file='{certs / 'cert.pem'}', key_file='{certs / 'key.pem'}')",
    )
    result = _release_and_check(bench, repo, docker_host.host)
    # The arm64 build ran on the other host: its BuildKit holds the step, and the local build
    # did amd64 alone.
    used = docker_host.docker("buildx", "du", "--verbose")
    assert used.returncode == 0, used.stderr
    assert "COPY app/ app/" in used.stdout
    assert "buildx build linux/amd64, linux/arm64 on" in result.stderr
    assert "--platform linux/amd64 --file" in result.stderr
    assert "--platform linux/arm64 --file" in result.stderr


def test_arm64_on_a_docker_context(bench: Bench, docker_host: DockerHost, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "tests/native-context")
    _with_builder(repo, f"Builder(endpoint='{docker_host.name}')")
    _release_and_check(bench, repo, f"context {docker_host.name}")


def test_arm64_on_buildkit_through_the_remote_driver(
    bench: Bench,
    buildkitd: BuildkitServer,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", "tests/native-buildkit")
    _with_builder(
        repo,
        f"Builder(endpoint='{buildkitd.host}', driver='remote', ca_file='{buildkitd.ca_cert}', "
        f"cert_file='{buildkitd.client_cert}', key_file='{buildkitd.client_key}')",
    )
    _release_and_check(bench, repo, buildkitd.host)


@pytest.mark.parametrize("value", ["all", "tcp://h:2376"])
def test_pipeline_builders_takes_none_or_spec(bench: Bench, tmp_path: Path, value: str) -> None:
    repo = make_repo(tmp_path / "repo", "tests/native-bad-env")
    result = bench.pipeline("build", cwd=repo.path, env=bench.env(PIPELINE_BUILDERS=value))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: PIPELINE_BUILDERS:")
