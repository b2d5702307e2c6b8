"""The generated GitLab pipeline, executed by gitlab-ci-local (shell executor) against the bench:
it must publish the same release as a local run of the same commit, verifiable with the same key.

The docker-in-docker service is switched off the way a runner with its own dockerd would do it
(PIPELINE_DIND_IMAGE empty, DOCKER_HOST at the host's socket), and the job image's Python is a
venv holding exactly pipeline.lock (the shell executor runs no image); nothing else is changed
(tests/support/gitlab_local.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.oci import platform_digests
from tests.support.bench import Bench
from tests.support.gitlab_local import job_python, run_pipeline, tag_pipeline_variables
from tests.support.release_repo import clone_project, release_tags


def test_gitlab_pipeline_releases_like_a_local_run(bench: Bench, tmp_path: Path) -> None:
    repo = clone_project(tmp_path / "project", "tests/gitlab")
    ci_python = job_python(repo, tmp_path)
    repo.tag("v3.1.0")
    variables = {
        **tag_pipeline_variables(bench, repo, "v3.1.0", tmp_path),
        # The PEM text, as a masked CI variable holds it.
        "COSIGN_KEY": bench.cosign_key.read_text(),
        "COSIGN_PASSWORD": bench.cosign_password,
        "COSIGN_PUBLIC_KEY": bench.cosign_pub.read_text(),
    }
    result = run_pipeline(repo, ci_python, variables)
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
    bench.release_on_plain(repo.path, repo.spec)
    plain = bench.plain.client()
    local_tags = release_tags(plain, repo.repository)
    assert set(local_tags) == set(expected)
    ci_index = client.resolve(repo.repository, ci_digest)
    local_index = plain.resolve(repo.repository, local_tags["3.1.0"])
    assert ci_index is not None and local_index is not None
    assert platform_digests(ci_index.document) == platform_digests(local_index.document), (
        "the same commit built in CI and locally gives the same image for every platform"
    )

    for ref in (
        f"{bench.registry.host}/{repo.repository}:3.1.0",
        f"{bench.plain.host}/{repo.repository}:3.1.0",
    ):
        verify = bench.verify_signature(ref)
        assert verify.returncode == 0, verify.stderr
