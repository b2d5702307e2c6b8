"""`pipeline verify REF`, the gate before production: it passes a real release and fails, with one
clear line and exit 10, on each way a reference can be wrong after the fact.

The attacks are made directly on the registry (through its API and cosign), as someone with push
rights but without the signing key would: re-point a tag to an unsigned image, re-point a version
tag to another signed release, sign an image without attestations. The policy case tightens the
spec after the release, so the attested scan (not a new one) is what fails it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.adapters.registry import Manifest, RegistryClient
from tests.support.bench import Bench, key_pair
from tests.support.release_repo import ReleaseRepo, make_repo

VERIFY_FAILED = 10


@dataclass(frozen=True)
class Released:
    repo: ReleaseRepo
    first: str  # index digest released as 1.0.0
    second: str  # index digest released as 1.1.0
    unsigned: str  # an image pushed into the same repository by someone else, never signed


@pytest.fixture(scope="module")
def released(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> Released:
    repo = make_repo(tmp_path_factory.mktemp("verify"), "verify/app")
    client = bench.client()
    digests = []
    for version in ("1.0.0", "1.1.0"):
        (repo.path / "app" / "RELEASE.txt").write_text(version + "\n")
        repo.commit(version)
        repo.tag(f"v{version}")
        result = bench.pipeline("release", cwd=repo.path)
        assert result.returncode == 0, result.stderr[-3000:]
        digest = client.digest_of(repo.repository, version)
        assert digest is not None
        digests.append(digest)
    unsigned = _copy_image(client, bench.base_image, repo.repository, "base")
    return Released(repo, digests[0], digests[1], unsigned)


def _copy_image(client: RegistryClient, source: str, repository: str, tag: str) -> str:
    """Copy an image index (`host/path@digest`) into `repository` through the registry API:
    what anyone with push rights can do, no signing involved."""
    path, _, digest = source.split("/", 1)[1].partition("@")
    index = client.resolve(path, digest)
    assert index is not None and index.is_index
    for entry in index.document["manifests"]:
        manifest = client.resolve(path, entry["digest"])
        assert manifest is not None
        document = manifest.document
        for blob in [document["config"], *document["layers"]]:
            if not client.blob_exists(repository, blob["digest"]):
                client.push_blob(repository, client.get_blob(path, blob["digest"]))
        client.put_manifest(repository, manifest.digest, manifest)
    client.put_manifest(repository, tag, index)
    return index.digest


def _verify(
    bench: Bench, repo: ReleaseRepo, ref: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return bench.pipeline("verify", ref, cwd=repo.path, env=bench.env(**env), timeout=300)


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == VERIFY_FAILED, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _repoint(bench: Bench, repository: str, tag: str, digest: str) -> None:
    """What an attacker with push rights does: PUT a tag to another manifest's bytes."""
    client = bench.client()
    manifest = client.resolve(repository, digest)
    assert manifest is not None
    client.put_manifest(repository, tag, Manifest(digest, manifest.media_type, manifest.body))
    assert client.digest_of(repository, tag) == digest


def test_a_release_verifies_by_tag_and_by_digest(bench: Bench, released: Released) -> None:
    host = bench.registry.host
    for ref in (
        f"{host}/{released.repo.repository}:1.1.0",
        f"{host}/{released.repo.repository}@{released.first}",
        f"{released.repo.repository}:1.0.0",  # the spec's registry
    ):
        result = _verify(bench, released.repo, ref)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "verifies" in result.stderr + result.stdout
        assert "signed as" in result.stdout + result.stderr


def test_a_tag_repointed_to_an_unsigned_image_fails(bench: Bench, released: Released) -> None:
    repository = released.repo.repository
    _repoint(bench, repository, "1", released.unsigned)
    line = _one_error(_verify(bench, released.repo, f"{bench.registry.host}/{repository}:1"))
    # The digest the tag now names, and why it fails: both, not either.
    assert f"@{released.unsigned}" in line, line
    assert "signature check failed" in line, line


def test_a_version_tag_repointed_to_another_signed_release_fails(
    bench: Bench, released: Released
) -> None:
    """Both digests are validly signed; only the signed version annotation tells them apart."""
    repository = released.repo.repository
    _repoint(bench, repository, "1.0.0", released.second)
    try:
        line = _one_error(
            _verify(bench, released.repo, f"{bench.registry.host}/{repository}:1.0.0")
        )
        assert "signed as version 1.1.0" in line and "re-pointed" in line, line
    finally:
        _repoint(bench, repository, "1.0.0", released.first)


def test_a_wrong_public_key_fails(bench: Bench, released: Released, tmp_path: Path) -> None:
    _, other = key_pair(tmp_path, "another-password")
    line = _one_error(
        _verify(
            bench,
            released.repo,
            f"{bench.registry.host}/{released.repo.repository}:1.1.0",
            COSIGN_PUBLIC_KEY=str(other),
        )
    )
    assert "signature" in line.lower(), line


def test_a_signed_image_without_attestations_fails(bench: Bench, released: Released) -> None:
    """Signed with the right key, but never scanned: no SBOM, no vulnerability attestation."""
    target = f"{bench.registry.host}/verify/signed-only"
    _copy_image(bench.client(), bench.base_image, "verify/signed-only", "1")
    ref = f"{target}@{released.unsigned}"
    signed = bench.cosign(
        "sign", "--yes", "--key", str(bench.cosign_key), "--tlog-upload=false", ref
    )
    assert signed.returncode == 0, signed.stderr
    line = _one_error(_verify(bench, released.repo, ref))
    assert "attestation" in line, line


def test_an_attested_scan_that_no_longer_meets_the_policy_fails(
    bench: Bench, released: Released
) -> None:
    """The spec now blocks unfixed HIGHs: the attested report holds CVE-2099-0003 (glibc)."""
    repo = released.repo
    spec = repo.path / repo.spec
    original = spec.read_text()
    repo.edit_spec("ignore_unfixed=True", "ignore_unfixed=False")
    try:
        line = _one_error(_verify(bench, repo, f"{bench.registry.host}/{repo.repository}:1.1.0"))
    finally:
        spec.write_text(original)
    assert "fails the policy" in line and "CVE-2099-0003" in line, line
