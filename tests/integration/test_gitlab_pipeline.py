"""The generated GitLab pipeline, executed by gitlab-ci-local (shell executor) against the bench:
it must publish the same release as a local run of the same commit, verifiable with the same key.

The docker-in-docker service is switched off the way a runner with its own dockerd would do it
(PIPELINE_DIND_IMAGE empty, DOCKER_HOST at the host's socket), and the job image's Python is a
venv holding exactly pipeline.lock (the shell executor runs no image); nothing else is changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.bench import ROOT, Bench
from tests.support.ci_containers import build_tool_wheel
from tests.support.release_repo import clone_project, release_tags

GITLAB_CI_LOCAL = ROOT / "node_modules" / "gitlab-ci-local" / "dist" / "index.js"


def test_gitlab_pipeline_releases_like_a_local_run(bench: Bench, tmp_path: Path) -> None:
    repo = clone_project(tmp_path / "project", "tests/gitlab")
    # What the job image holds, here in a venv: the tool and nox from pipeline.lock, the tool's
    # wheel built from this commit and locked (before_script checks exactly that).
    wheels = build_tool_wheel(repo, tmp_path / "wheels").parent
    for argv in (
        [sys.executable, "-m", "pipeline", "workflows", "--find-links", str(wheels)],
        [sys.executable, "-m", "venv", str(tmp_path / "job-python")],
    ):
        done = subprocess.run(argv, cwd=repo.path, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    if repo.git("status", "--porcelain"):
        repo.commit("lock the tool's wheel built here")
    ci_python = tmp_path / "job-python" / "bin"
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
    repo.tag("v3.1.0")
    variables = {
        # What GitLab sets for a tag pipeline (gitlab-ci-local models a branch pipeline).
        "GITLAB_CI": "true",
        "CI_COMMIT_TAG": "v3.1.0",
        "CI_COMMIT_REF_NAME": "v3.1.0",
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
        # The PEM text, as a masked CI variable holds it.
        "COSIGN_KEY": bench.cosign_key.read_text(),
        "COSIGN_PASSWORD": bench.cosign_password,
        "COSIGN_PUBLIC_KEY": bench.cosign_pub.read_text(),
        "PIPELINE_NOX_ENVDIR": str(tmp_path / "nox"),
    }
    argv = [
        "node",
        str(GITLAB_CI_LOCAL),
        "--file",
        "workflows/gitlab-ci.yml",
        "--force-shell-executor",
        "--no-color",
        "--manual",
        "production",
    ]
    for name, value in variables.items():
        argv += ["--variable", f"{name}={value}"]
    env = {**os.environ, "PATH": f"{ci_python}{os.pathsep}{os.environ['PATH']}"}
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "CI", "VIRTUAL_ENV"):
        env.pop(name, None)
    result = subprocess.run(
        argv, cwd=repo.path, env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    for job in ("build", "scan", "sign", "publish", "release", "production"):
        assert f"PASS  {job}" in log, log[-3000:]

    client = bench.client()
    published = release_tags(client, repo.repository)
    expected = json.loads(
        bench.pipeline("tags", "--json", "--spec", repo.spec, cwd=repo.path).stdout
    )["tags"]
    assert set(published) == {*expected, "production"}
    assert len(set(published.values())) == 1
    ci_digest = published["3.1.0"]

    # The same commit released locally, to the bench's second registry.
    local = bench.pipeline(
        "release",
        "--spec",
        repo.spec,
        cwd=repo.path,
        env=bench.env(
            PIPELINE_REGISTRY=bench.plain.host,
            PIPELINE_REGISTRY_CA="",
            PIPELINE_TRIVY_DB_REPOSITORY=bench.sandbox_db,
        ),
    )
    assert local.returncode == 0, local.stderr[-4000:]
    plain = bench.plain.client()
    local_tags = release_tags(plain, repo.repository)
    assert set(local_tags) == set(expected)
    ci_index = client.resolve(repo.repository, ci_digest)
    local_index = plain.resolve(repo.repository, local_tags["3.1.0"])
    assert ci_index is not None and local_index is not None
    from pipeline.oci import platform_digests

    assert platform_digests(ci_index.document) == platform_digests(local_index.document), (
        "the same commit built in CI and locally gives the same image for every platform"
    )

    for ref in (
        f"{bench.registry.host}/{repo.repository}:3.1.0",
        f"{bench.plain.host}/{repo.repository}:3.1.0",
    ):
        verify = bench.verify_signature(ref)
        assert verify.returncode == 0, verify.stderr
