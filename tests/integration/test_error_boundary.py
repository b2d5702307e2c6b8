"""Whatever goes wrong, the user sees one redacted `error:` line and an exit code, never a
traceback: a registry answering malformed challenges, tokens or manifests (tests/support/
badregistry.py), and tools printing garbage (a trivy and a cosign that answer nonsense with exit
code 0, first on PATH). The expected ones are named errors (exit 5, 6, 10); anything unexpected
is exit 70 with the traceback in dist/pipeline-debug.log, redacted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.badregistry import BadRegistry, Scenario
from tests.support.bench import Bench
from tests.support.release_repo import ReleaseRepo, make_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return make_repo(tmp_path_factory.mktemp("boundary") / "repo", "tests/boundary")


def _one_line(result: subprocess.CompletedProcess[str], bench: Bench) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert (bench.registry.password or "?") not in output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    ("scenario", "code", "says"),
    [
        ("bearer-without-realm", 6, "answered a Bearer challenge without a usable realm"),
        ("token-not-json", 6, "answered text/html, not JSON"),
        ("truncated-manifest", 6, "that are not a JSON manifest (truncated or not a registry)"),
        ("html-manifest", 6, "bytes of text/html that are not a JSON manifest"),
        ("manifest-as-text", 6, "as 'text/plain', not a manifest media type"),
        ("index-entries-without-media-type", 70, "unexpected failure during"),
    ],
)
def test_a_registry_answering_nonsense_is_one_line(
    bench: Bench, repo: ReleaseRepo, scenario: Scenario, code: int, says: str
) -> None:
    with BadRegistry(scenario) as bad:
        env = bench.env(PIPELINE_REGISTRY=bad.host, PIPELINE_REGISTRY_CA="")
        result = bench.pipeline(
            "verify", f"{bad.host}/tests/boundary:1.0.0", cwd=repo.path, env=env
        )
        assert bad.requests, "the registry was asked"
    assert result.returncode == code, result.stderr[-3000:]
    line = _one_line(result, bench)
    assert says in line, line
    log = repo.path / "dist" / "pipeline-debug.log"
    if code == 70:
        assert "KeyError: 'mediaType'" in line and f"(traceback in {log}" in line, line
        text = log.read_text()
        assert "Traceback (most recent call last)" in text
        assert (bench.registry.password or "?") not in text
        log.unlink()


def _fake_tool(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _released(bench: Bench, tmp_path: Path, repository: str) -> ReleaseRepo:
    released = make_repo(tmp_path / "released", repository)
    released.tag("v1.0.0")
    result = bench.pipeline("release", cwd=released.path)
    assert result.returncode == 0, result.stderr[-3000:]
    return released


def test_a_trivy_printing_garbage_is_refused(bench: Bench, tmp_path: Path) -> None:
    fake = _fake_tool(
        tmp_path / "bin",
        "trivy",
        "#!/bin/sh\necho 'panic: runtime error: ¯\\\\_(ツ)_/¯ {not json'\nexit 0\n",
    )
    released = make_repo(tmp_path / "garbage", "tests/trivy-garbage")
    released.tag("v1.0.0")
    env = bench.env(
        PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        # The fake must pass the pinned-binary check to reach the point under test.
        PIPELINE_TRIVY_SHA256=hashlib.sha256(fake.read_bytes()).hexdigest(),
    )
    result = bench.pipeline("release", cwd=released.path, env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    line = _one_line(result, bench)
    assert "trivy wrote no readable JSON report" in line, line
    assert released.report()["status"] == "failed"
    assert released.report()["run"]["failed_step"] == "scan"


def test_an_unpinned_trivy_is_refused_before_it_scans(
    bench: Bench, repo: ReleaseRepo, tmp_path: Path
) -> None:
    fake = _fake_tool(tmp_path / "bin", "trivy", "#!/bin/sh\nexit 0\n")
    env = bench.env(PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("PIPELINE_TRIVY_SHA256", None)
    result = bench.pipeline("rescan", cwd=repo.path, env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    line = _one_line(result, bench)
    assert f"trivy at {fake} has sha256" in line and "not the pinned" in line, line


def test_a_cosign_printing_garbage_fails_verification(bench: Bench, tmp_path: Path) -> None:
    released = _released(bench, tmp_path, "tests/cosign-garbage")
    real = shutil.which("cosign")
    wrapper = _fake_tool(
        tmp_path / "bin",
        "cosign",
        "#!/bin/sh\n"
        'if [ "$1" = verify ]; then echo "{{{ garbage"; exit 0; fi\n'
        f'exec {real} "$@"\n',
    )
    env = bench.env(PATH=f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    ref = f"{bench.registry.host}/{released.repository}:1.0.0"
    result = bench.pipeline("verify", ref, cwd=released.path, env=env)
    assert result.returncode == 10, result.stderr[-3000:]
    line = _one_line(result, bench)
    assert "cosign verify printed no readable payload" in line, line
