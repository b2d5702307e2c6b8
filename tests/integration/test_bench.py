"""The bench itself, proven with the real tools: every other integration test stands on it.

buildx builds both platforms from the bench base and pushes; a container of each platform runs and
reports its own architecture; Trivy finds exactly the planted advisories through its real DB
download path; cosign signs by digest and verifies, and a wrong key fails; the registry refuses an
unauthenticated push. Reports are parsed as JSON, never grepped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.runner import Runner
from pipeline.errors import AuthError
from tests.support.bench import PLANTED, Bench, key_pair

PLATFORMS = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN uname -m > /built-on
"""


def _run(
    argv: list[str], env: Mapping[str, str], cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    env = {**env, "PATH": Runner().env["PATH"]}  # Trivy lives in this interpreter's bin/
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{argv[:4]}: {result.stderr[-3000:]}"
    return result


@dataclass(frozen=True)
class Built:
    ref: str  # in the TLS registry, by tag
    digest: str  # its index digest
    plain_ref: str  # the same build in the plain-HTTP registry


@pytest.fixture(scope="module")
def built(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("bench-build")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    ref = f"{bench.registry.host}/bench/arch:1"
    plain_ref = f"{bench.plain.host}/bench/arch:1"
    _run(
        [
            "docker",
            "buildx",
            "build",
            "--platform",
            ",".join(PLATFORMS),
            "--build-arg",
            f"BASE={bench.base_image}",
            "--provenance=false",
            "--push",
            "--tag",
            ref,
            "--tag",
            plain_ref,
            ".",
        ],
        bench.env(),
        cwd=folder,
    )
    digest = bench.client().digest_of("bench/arch", "1")
    assert digest is not None
    return Built(ref, digest, plain_ref)


def test_buildx_pushed_both_platforms(bench: Bench, built: Built) -> None:
    # imagetools ignores a CA for loopback registries, so it reads the plain-HTTP copy.
    raw = _run(["docker", "buildx", "imagetools", "inspect", "--raw", built.plain_ref], bench.env())
    index = json.loads(raw.stdout)
    listed = {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]}
    assert listed == set(PLATFORMS)
    manifest = bench.client().resolve("bench/arch", built.digest)
    assert manifest is not None and manifest.is_index
    in_tls = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in manifest.document["manifests"]
    }
    assert in_tls == set(PLATFORMS), "the TLS registry holds the same two platforms"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_container_of_each_platform_reports_its_architecture(
    bench: Bench, built: Built, platform: str
) -> None:
    out = _run(
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "always",
            "--platform",
            platform,
            f"{built.ref.rsplit(':', 1)[0]}@{built.digest}",
            "sh",
            "-c",
            "uname -m; cat /built-on",
        ],
        bench.env(),
    )
    assert out.stdout.split() == [PLATFORMS[platform], PLATFORMS[platform]], (
        "the runtime and the build step both ran as the target architecture"
    )


def _trivy(bench: Bench, cache: Path, platform: str, *extra: str) -> dict[str, Any]:
    report = cache.parent / f"report-{platform.replace('/', '-')}-{len(extra)}.json"
    _run(
        [
            "trivy",
            "image",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--cache-backend",
            "memory",
            "--image-src",
            "remote",
            "--scanners",
            "vuln",
            "--format",
            "json",
            "--output",
            str(report),
            "--platform",
            platform,
            "--skip-db-update",
            "--skip-java-db-update",
            "--skip-version-check",
            "--ignorefile",
            "",
            *extra,
            bench.base_image,
        ],
        bench.env(),
        cwd=cache.parent,
    )
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def _found(report: dict[str, Any]) -> dict[str, str]:
    """advisory id -> severity, over every result (one source package may ship several)."""
    found: dict[str, str] = {}
    for result in report.get("Results") or []:
        for vuln in result.get("Vulnerabilities") or []:
            found[vuln["VulnerabilityID"]] = vuln["Severity"]
    return found


@pytest.fixture(scope="module")
def trivy_cache(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture DB fetched the way Trivy fetches its real one: an OCI artifact pull."""
    cache = tmp_path_factory.mktemp("trivy") / "cache"
    _run(
        [
            "trivy",
            "image",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--download-db-only",
            "--db-repository",
            bench.db_repository,
        ],
        bench.env(),
    )
    assert (cache / "db" / "trivy.db").is_file()
    return cache


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_trivy_reports_exactly_the_planted_advisories(
    bench: Bench, trivy_cache: Path, platform: str
) -> None:
    report = _trivy(bench, trivy_cache, platform)
    assert report["Metadata"]["ImageConfig"]["architecture"] == platform.split("/")[1]
    assert _found(report) == {p.id: p.severity for p in PLANTED}
    unfixed = {p.id for p in PLANTED if p.fixed_version is None}
    assert unfixed == {"CVE-2099-0003"}
    without = _found(_trivy(bench, trivy_cache, platform, "--ignore-unfixed"))
    assert without == {p.id: p.severity for p in PLANTED if p.id not in unfixed}


def test_the_sandbox_db_is_valid_and_reports_nothing(
    bench: Bench, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The DB a user's offline release scans against: Trivy loads it, and a clean app (here the
    base itself) has no finding, so it passes the default gate."""
    cache = tmp_path_factory.mktemp("trivy-sandbox") / "cache"
    env = bench.env()
    _run(
        [
            "trivy",
            "image",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--download-db-only",
            "--db-repository",
            bench.sandbox_db,
        ],
        env,
    )
    for platform in sorted(PLATFORMS):
        report = _trivy(bench, cache, platform)
        assert report["Metadata"]["OS"]["Family"] == "debian"
        assert report["Results"], "Trivy found the OS packages to check"
        assert _found(report) == {}


def test_cosign_signs_by_digest_and_only_the_right_key_verifies(
    bench: Bench, built: Built, tmp_path: Path
) -> None:
    ref = f"{bench.registry.host}/bench/arch@{built.digest}"
    _run(
        ["cosign", "sign", "--yes", "--tlog-upload=false", "--key", str(bench.cosign_key), ref],
        bench.env(),
    )
    verified = bench.verify_signature(ref)
    assert verified.returncode == 0, verified.stderr
    payload = json.loads(verified.stdout)
    assert payload[0]["critical"]["image"]["docker-manifest-digest"] == built.digest
    _, other = key_pair(tmp_path, "other")
    wrong = bench.verify_signature(ref, other)
    assert wrong.returncode != 0
    assert "no matching signatures" in wrong.stderr.lower() or "invalid" in wrong.stderr.lower()


def test_the_registry_refuses_an_unauthenticated_push(
    bench: Bench, built: Built, tmp_path: Path
) -> None:
    anonymous = bench.client(anonymous=True)
    with pytest.raises(AuthError):
        anonymous.push_blob("bench/anonymous", b"pushed without credentials")
    # docker itself, with no credentials: a local single-platform image (FROM scratch, no pull).
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    target = f"{bench.registry.host}/bench/anonymous:1"
    _run(["docker", "buildx", "build", "--load", "--tag", target, "."], bench.env(), tmp_path)
    empty_config = tmp_path / "docker"
    empty_config.mkdir()
    (empty_config / "config.json").write_text("{}")
    refused = subprocess.run(
        ["docker", "push", target],
        env={**bench.env(), "DOCKER_CONFIG": str(empty_config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "no basic auth credentials" in refused.stderr or "401" in refused.stderr, refused.stderr
    assert bench.client().tags("bench/anonymous") == [], "nothing was written"
