"""Sandbox conveniences never stand in for real inputs unless asked: a release to a real registry
(the bench's plain one, not the sandbox) refuses the fixture Trivy DB before anything is built;
with PIPELINE_OFFLINE_FIXTURES=1 it passes, says "fixture" in the report and in the signed
vulnerability attestation, and `verify` refuses such an image unless --allow-fixtures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pipeline.predicates import DB_FACTS
from tests.support.bench import Bench
from tests.support.release_repo import make_repo, release_tags


def _env(bench: Bench, **extra: str) -> dict[str, str]:
    env = bench.env(PIPELINE_REGISTRY=bench.plain.host, PIPELINE_REGISTRY_CA="")
    env.pop("PIPELINE_OFFLINE_FIXTURES", None)  # the bench's opt-in taken away; `extra` may add it
    return {**env, **extra}


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_the_fixture_db_is_refused_outside_the_sandbox(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "closed/refused")
    repo.tag("v1.0.0")
    result = bench.pipeline("release", cwd=repo.path, env=_env(bench))
    assert result.returncode == 5, result.stderr[-3000:]
    (line,) = _errors(result.stderr)
    assert f"PIPELINE_TRIVY_DB_REPOSITORY: {bench.db_repository} is the fixture Trivy DB" in line
    assert "nothing was built" in line and "buildx" not in result.stderr
    assert release_tags(bench.plain.client(), repo.repository) == {}
    assert repo.report()["status"] == "failed"


def test_with_the_opt_in_it_passes_and_says_fixture(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "closed/opted-in")
    repo.tag("v1.0.0")
    env = _env(bench, PIPELINE_OFFLINE_FIXTURES="1")
    result = bench.pipeline("release", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scanning with the fixture Trivy DB" in result.stderr
    database = repo.report()["database"]
    assert database["fixture"] is True and database["source"].startswith(bench.registry.host)
    assert "**fixture DB**" in (repo.path / "dist" / "summary.md").read_text()

    ref = f"{bench.plain.host}/{repo.repository}:1.0.0"
    attested = bench.cosign(
        "verify-attestation",
        "--key",
        str(bench.cosign_pub),
        "--insecure-ignore-tlog=true",
        "--type",
        "vuln",
        ref,
    )
    assert attested.returncode == 0, attested.stderr
    for line in attested.stdout.splitlines():
        predicate = json.loads(base64.b64decode(json.loads(line)["payload"]))["predicate"]
        # cosign's own DB fields, then the facts it keeps only inside the Trivy report
        assert predicate["scanner"]["db"]["version"] == "2026-01-01T00:00:00Z"
        assert predicate["scanner"]["db"]["uri"].startswith(f"oci://{bench.registry.host}/")
        assert predicate["scanner"]["result"][DB_FACTS]["fixture"] is True

    refused = bench.pipeline("verify", ref, cwd=repo.path, env=_env(bench))
    assert refused.returncode == 10, refused.stderr[-3000:]
    (line,) = _errors(refused.stderr)
    assert "was scanned with the fixture Trivy DB" in line and "--allow-fixtures" in line
    allowed = bench.pipeline("verify", ref, "--allow-fixtures", cwd=repo.path, env=_env(bench))
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "FIXTURE DB" in allowed.stderr
