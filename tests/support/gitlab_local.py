"""The generated GitLab pipeline under gitlab-ci-local (shell executor) against the bench: the job
image's Python stood in for by a venv holding exactly pipeline.lock (this commit's wheel locked),
the variables a tag pipeline and the project's CI/CD settings would give (used by
tests/integration/test_gitlab_pipeline.py and test_ci_keyless.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.bench import ROOT, Bench
from tests.support.ci_containers import build_tool_wheel
from tests.support.release_repo import ReleaseRepo

GITLAB_CI_LOCAL = ROOT / "node_modules" / "gitlab-ci-local" / "dist" / "index.js"


def job_python(repo: ReleaseRepo, work: Path, env: Mapping[str, str] | None = None) -> Path:
    """The clone's generated files and lock regenerated with its own wheel (committed), and a
    venv holding exactly pipeline.lock: what the job image holds. Returns the venv's bin/."""
    wheels = build_tool_wheel(repo, work / "wheels").parent
    full_env = {**os.environ, **(env or {})}
    for argv in (
        [sys.executable, "-m", "pipeline", "workflows", "--find-links", str(wheels)],
        [sys.executable, "-m", "venv", str(work / "job-python")],
    ):
        done = subprocess.run(
            argv, cwd=repo.path, env=full_env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
    if repo.git("status", "--porcelain"):
        repo.commit("lock the tool's wheel built here")
    ci_python = work / "job-python" / "bin"
    installed = subprocess.run(
        [
            str(ci_python / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--find-links",
            str(wheels),
            "-r",
            "pipeline.lock",
        ],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return ci_python


def tag_pipeline_variables(bench: Bench, repo: ReleaseRepo, tag: str, work: Path) -> dict[str, str]:
    """What GitLab sets for a tag pipeline (gitlab-ci-local models a branch pipeline) and the
    project's CI/CD variables would give, for a runner with its own dockerd; no signing key."""
    return {
        "GITLAB_CI": "true",
        "CI_COMMIT_TAG": tag,
        "CI_COMMIT_REF_NAME": tag,
        "CI_COMMIT_BRANCH": "",
        "CI_PIPELINE_SOURCE": "push",
        # The same project as the local run describes (the org.opencontainers.image.source
        # label): with it, the CI and local images of this commit must be byte-identical.
        "CI_PROJECT_URL": "https://example.com/acme/sample-app",
        # A runner with its own dockerd: no dind service, the host's socket, no TLS to it.
        "PIPELINE_DIND_IMAGE": "",
        "DOCKER_HOST": "unix:///var/run/docker.sock",
        "DOCKER_TLS_VERIFY": "",
        "DOCKER_CERT_PATH": "",
        "DOCKER_TLS_CERTDIR": "",
        # The project's registry path as GitLab predefines it: the generated file passes it on as
        # PIPELINE_REPOSITORY_BASE (the spec names the built-in registry), so the images go there.
        "CI_REGISTRY_IMAGE": f"{bench.registry.host}/{repo.repository}",
        # Its CA and credentials, as project CI/CD variables would give them.
        "PIPELINE_REGISTRY_CA": str(bench.registry.ca_file),
        "PIPELINE_REGISTRY_USERNAME": bench.registry.username or "",
        "PIPELINE_REGISTRY_PASSWORD": bench.registry.password or "",
        "PIPELINE_BASE_IMAGE": bench.base_image,
        "PIPELINE_TRIVY_DB_REPOSITORY": bench.sandbox_db,  # the clone has no ignore file
        "PIPELINE_OFFLINE_FIXTURES": "1",  # the bench's fixture DB stands in for Trivy's
        "SSL_CERT_FILE": bench.tool_env()["SSL_CERT_FILE"],
        "PIPELINE_NOX_ENVDIR": str(work / "nox"),
    }


def run_pipeline(
    repo: ReleaseRepo,
    ci_python: Path,
    variables: Mapping[str, str],
    *,
    manual: tuple[str, ...] = ("production",),
    timeout: float = 1500,
) -> subprocess.CompletedProcess[str]:
    """gitlab-ci-local on the clone's workflows/gitlab-ci.yml, every job in the shell."""
    argv = [
        "node",
        str(GITLAB_CI_LOCAL),
        "--file",
        "workflows/gitlab-ci.yml",
        "--force-shell-executor",
        "--no-color",
    ]
    for job in manual:
        argv += ["--manual", job]
    for name, value in variables.items():
        argv += ["--variable", f"{name}={value}"]
    env = {**os.environ, "PATH": f"{ci_python}{os.pathsep}{os.environ['PATH']}"}
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "CI", "VIRTUAL_ENV"):
        env.pop(name, None)
    return subprocess.run(
        argv, cwd=repo.path, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
