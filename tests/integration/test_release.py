"""The release engine end to end on the bench: real buildx, Trivy, cosign and registry.

Every check reads the registry (through its API) or runs cosign, never only the tool's report.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.registry import RegistryClient
from pipeline.oci import platform_digests
from tests.support.bench import Bench, key_pair
from tests.support.ci_env import github_env
from tests.support.release_repo import ReleaseRepo, make_repo

RELEASE_TAGS = {"1.2.3", "1.2", "1", "latest"}


def _release(
    bench: Bench, repo: ReleaseRepo, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return bench.pipeline("release", *args, cwd=repo.path, env=bench.env(**env))


def _tags(client: RegistryClient, repository: str) -> dict[str, str]:
    """tag -> digest, release tags only (no cosign .sig/.att tags, no build cache)."""
    found = {}
    for tag in client.tags(repository):
        if tag.endswith((".sig", ".att")) or tag == "buildcache":
            continue
        digest = client.digest_of(repository, tag)
        assert digest is not None
        found[tag] = digest
    return found


@pytest.fixture(scope="module")
def released(
    bench: Bench, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReleaseRepo, subprocess.CompletedProcess[str]]:
    repo = make_repo(tmp_path_factory.mktemp("full"), "tests/full")
    repo.tag("v1.2.3")
    summary = repo.path / "step-summary.md"
    result = _release(bench, repo, GITHUB_STEP_SUMMARY=str(summary))
    return repo, result


def test_full_release_publishes_policy_tags_on_one_digest(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, result = released
    assert result.returncode == 0, result.stderr[-3000:]
    tags = _tags(bench.client(), repo.repository)
    sha_tag = f"sha-{repo.head[:7]}"
    assert set(tags) == RELEASE_TAGS | {sha_tag}
    assert len(set(tags.values())) == 1, "every tag names the one released digest"
    report = repo.report()
    (image,) = report["images"]
    assert image["index_digest"] == tags["1.2.3"]
    assert report["version"] == "1.2.3" and report["commit"] == repo.head


def test_both_platforms_are_in_the_index(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = released
    index = bench.client().resolve(repo.repository, "1.2.3")
    assert index is not None and index.is_index
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.document["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert platforms == {"linux/amd64", "linux/arm64"}
    kinds = [
        m.get("annotations", {}).get("vnd.docker.reference.type")
        for m in index.document["manifests"]
    ]
    # BuildKit's unsigned provenance would sit in the index and change its digest at every
    # build; the signed SLSA provenance is an attestation instead.
    assert kinds.count("attestation-manifest") == 0, "the index holds the images only"
    report = repo.report()["images"][0]
    assert set(report["platforms"]) == {"linux/amd64", "linux/arm64"}
    # Each platform's scan is of that platform's own image.
    for platform, digest in report["platforms"].items():
        scanned = json.loads((repo.path / report["scan"]["reports"][platform]["json"]).read_text())[
            "Metadata"
        ]["ImageConfig"]
        assert f"{scanned['os']}/{scanned['architecture']}" == platform, digest


def test_signature_verifies_with_the_public_key_and_not_another(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    repo, _ = released
    ref = f"{bench.registry.host}/{repo.repository}:1.2.3"
    ok = bench.verify_signature(ref)
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)[0]
    assert (
        payload["critical"]["image"]["docker-manifest-digest"]
        == repo.report()["images"][0]["index_digest"]
    )
    assert payload["optional"]["org.opencontainers.image.version"] == "1.2.3"
    _, other = key_pair(tmp_path, "other-pass")
    wrong = bench.verify_signature(ref, other)
    assert wrong.returncode != 0


def test_sbom_and_vulnerability_attestations_are_retrievable(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = released
    image = repo.report()["images"][0]
    for platform, digest in image["platforms"].items():
        ref = f"{image['repository']}@{digest}"
        for kind, predicate_type in (
            ("cyclonedx", "https://cyclonedx.org/bom"),
            ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ):
            out = bench.cosign(
                "verify-attestation",
                "--key",
                str(bench.cosign_pub),
                "--insecure-ignore-tlog=true",
                "--type",
                kind,
                ref,
            )
            assert out.returncode == 0, f"{platform} {kind}: {out.stderr}"
            statement = json.loads(
                base64.b64decode(json.loads(out.stdout.splitlines()[0])["payload"])
            )
            assert statement["predicateType"] == predicate_type
            assert statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
            if kind == "cyclonedx":
                names = {c["name"] for c in statement["predicate"]["components"]}
                assert "bash" in names and "python3.11" in names


def test_report_summary_and_dotenv(
    released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]],
) -> None:
    repo, _ = released
    report = repo.report()
    image = report["images"][0]
    assert image["scan"]["verdict"] == "pass"
    assert image["scan"]["counts"]["CRITICAL"] == 0, "the accepted CRITICAL is in the ignore file"
    assert image["scan"]["unfixed_allowed"] > 0, (
        "the planted unfixed HIGH is reported, not blocking"
    )
    assert image["verified"] and image["signature"].endswith(".sig")
    assert len(image["attestations"]) == 3, "on the index and on both platforms"
    assert {t["name"] for t in image["tags"]} >= RELEASE_TAGS
    assert report["status"] == "pass" and report["run"]["error"] is None
    assert report["database"]["fixture"] is True and report["database"]["digest"].startswith(
        "sha256:"
    )
    assert report["database"]["updated_at"] == "2026-01-01T00:00:00Z"
    assert (repo.path / "dist" / "summary.md").read_text().startswith("## Release 1.2.3")
    assert f"PIPELINE_RUN={report['run']['id']}" in (repo.path / "dist" / "release.env").read_text()
    assert report["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    steps = {"setup", "preflight", "build", "scan", "sign", "publish"}
    assert set(report["timings_seconds"]) == steps
    summary = (repo.path / "step-summary.md").read_text()
    assert "## Release 1.2.3" in summary and image["index_digest"] in summary
    dotenv = (repo.path / "dist" / "release.env").read_text()
    assert f"PIPELINE_SAMPLE_APP_DIGEST={image['index_digest']}" in dotenv


def test_rerun_is_a_no_op(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = released
    client = bench.client()
    before = _tags(client, repo.repository)
    digest = before["1.2.3"]
    sig_tag = digest.replace(":", "-") + ".sig"
    signatures_before = client.resolve(repo.repository, sig_tag)
    assert signatures_before is not None
    again = _release(bench, repo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing signed" in again.stderr and "already published" in again.stderr
    assert "buildx build" not in again.stderr and "cosign sign" not in again.stderr
    assert _tags(client, repo.repository) == before
    signatures_after = client.resolve(repo.repository, sig_tag)
    assert signatures_after is not None and signatures_after.digest == signatures_before.digest


def test_different_content_under_an_existing_version_is_refused(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = released
    client = bench.client()
    before = _tags(client, repo.repository)
    server = repo.path / "app" / "server.py"
    server.write_text(server.read_text().replace('"APP_VERSION", "dev"', '"APP_VERSION", "dev2"'))
    repo.commit("change content")
    repo.tag("v1.2.3", force=True)
    started = time.monotonic()
    result = _release(bench, repo)
    seconds = time.monotonic() - started
    print(f"a used version refused after {seconds:.1f} s")
    assert result.returncode == 9, result.stderr[-3000:]
    last = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(last) == 1
    assert f"{repo.repository}:1.2.3 already names {before['1.2.3']}" in last[0]
    assert "nothing was built, signed or pushed" in last[0]
    # Refused before anything ran: no build, and not one new tag (not even the sha tag).
    assert "buildx" not in result.stderr and "cosign sign" not in result.stderr
    assert seconds < 15, f"refused after {seconds:.1f} s"
    assert _tags(client, repo.repository) == before
    assert repo.report()["status"] == "failed"
    assert repo.report()["run"]["failed_step"] is None, "refused before the first step"


def test_gate_blocks_the_planted_critical_and_tags_nothing(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "blocked", "tests/blocked")
    repo.edit_spec('ignore_file=".trivyignore.yaml",', "")
    repo.commit("no accepted risks")
    repo.tag("v2.0.0")
    result = _release(bench, repo)
    assert result.returncode == 8, result.stderr[-3000:]
    assert "CVE-2099-0001" in result.stderr and "Findings that block the release" in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(error) == 1
        and "vulnerability gate" in error[0]
        and "nothing was signed or tagged" in error[0]
    )
    # The finding comes from the bench's fixture DB, and the gate says so.
    assert "a planted advisory of a fixture Trivy DB (pipeline fixture DB" in error[0], error[0]
    assert "fixture DB: not a real advisory" in result.stderr
    assert _tags(bench.client(), repo.repository) == {}
    index = json.loads((repo.path / "dist" / "state.json").read_text())["images"]["sample-app"][
        "index_digest"
    ]
    assert bench.client().resolve(repo.repository, index.replace(":", "-") + ".sig") is None, (
        "not signed"
    )


def test_pull_request_builds_and_scans_but_pushes_nothing(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "pr", "tests/pr")
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"number": 7}, "repository": {"default_branch": "main"}})
    )
    env = github_env("pull_request", "refs/pull/7/merge", repo.head, event)
    result = _release(bench, repo, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pull request context: nothing is pushed" in result.stderr
    assert bench.client().tags(repo.repository) == []
    state = json.loads((repo.path / "dist" / "state.json").read_text())
    image = state["images"]["sample-app"]
    assert image["layout"] and image["scan"]["verdict"] == "pass"
    assert image["tags"] == [] and not image["verified"]


def test_attestations_are_where_verifiers_look_on_the_version_tag(
    bench: Bench, released: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    """`cosign verify-attestation IMAGE:1.2.3` as users type it: the tag resolves to the index,
    which carries every platform's SBOM and scan and the SLSA provenance."""
    repo, _ = released
    registry = bench.client().resolve(repo.repository, "1.2.3")
    assert registry is not None
    repository = f"{bench.registry.host}/{repo.repository}"
    platforms = platform_digests(registry.document)
    ref = f"{repository}:1.2.3"
    found: dict[str, list[dict[str, Any]]] = {}
    for kind in ("cyclonedx", "vuln", "slsaprovenance1"):
        out = bench.cosign(
            "verify-attestation",
            "--key",
            str(bench.cosign_pub),
            "--insecure-ignore-tlog=true",
            "--type",
            kind,
            ref,
        )
        assert out.returncode == 0, f"{kind}: {out.stderr}"
        found[kind] = [
            json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in out.stdout.splitlines()
            if line.strip()
        ]
    index = registry.digest.split(":")[1]
    for statements in found.values():
        assert all(s["subject"][0]["digest"]["sha256"] == index for s in statements)
    sboms = {s["predicate"]["metadata"]["component"]["name"] for s in found["cyclonedx"]}
    assert sboms == {f"{repository}@{d}" for d in platforms.values()}
    assert len(found["vuln"]) == len(platforms)
    (statement,) = found["slsaprovenance1"]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    predicate = statement["predicate"]
    source = predicate["buildDefinition"]["externalParameters"]["source"]
    signed = bench.verify_signature(ref)
    assert signed.returncode == 0, signed.stderr
    revision = json.loads(signed.stdout)[0]["optional"]["org.opencontainers.image.revision"]
    assert source["commit"] == revision, "the provenance names the commit the signature names"
    assert source["ref"] == "refs/tags/v1.2.3"
    outputs = {b["digest"]["sha256"] for b in predicate["runDetails"]["byproducts"]}
    from_registry = {registry.digest, *platforms.values()}
    assert outputs == {d.split(":")[1] for d in from_registry}, "index and every platform"
    dependencies = predicate["buildDefinition"]["resolvedDependencies"]
    assert dependencies[0]["digest"]["gitCommit"] == revision
    assert any(
        d.get("digest", {}).get("sha256") == bench.base_image.split("@sha256:")[1]
        for d in dependencies[1:]
    ), "the base image by digest"
