"""The generated GitHub workflow, executed (tests/support/github_replay.py): every `run:` step of
every job that the event selects, in job order, with GitHub's variables and event payload,
against the bench.

`uses:` steps are emulated, not skipped: checkout/setup steps are what this machine already is;
artifact uploads and downloads really move `dist/` through a store (each job starts with an empty
`dist/`), so a file a later job needs but an earlier one did not hand over fails the test. The
runner's machine set-up (trusting the bench CA, the login-action's docker config, the offline
base image and Trivy DB) is given as its environment.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import Bench
from tests.support.github_replay import Event, Runner, prepare
from tests.support.release_repo import clone_project, release_tags


@pytest.fixture(scope="module")
def setup(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, dict[str, Any]]:
    work = tmp_path_factory.mktemp("github")
    return prepare(bench, work, clone_project(work / "project", "tests/github"))


def test_pull_request_builds_and_scans_and_pushes_nothing(
    bench: Bench, setup: tuple[Runner, dict[str, Any]]
) -> None:
    runner, workflow = setup
    event = Event(
        "pull_request",
        "refs/pull/12/merge",
        {"pull_request": {"number": 12}, "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, event) == ["pull-request"]
    assert bench.client().tags(runner.repo.repository) == []
    assert runner.categories == [
        "trivy-sample-app-linux-amd64",
        "trivy-sample-app-linux-arm64",
    ], "one SARIF upload (one run) per image and platform"


def test_branch_push_then_tag_push_then_rollback(
    bench: Bench, setup: tuple[Runner, dict[str, Any]]
) -> None:
    runner, workflow = setup
    repo = runner.repo
    branch = Event(
        "push",
        "refs/heads/main",
        {"ref": "refs/heads/main", "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, branch) == ["build", "scan", "sign", "publish"]
    first = release_tags(bench.client(), repo.repository)
    assert set(first) == {"main", f"sha-{repo.head[:7]}"}
    main_digest = first["main"]

    server = repo.path / "sample-app" / "app" / "server.py"
    server.write_text(server.read_text().replace('"APP_VERSION", "dev"', '"APP_VERSION", "4"'))
    repo.commit("release 4.0.0")
    repo.tag("v4.0.0")
    tag = Event(
        "push",
        "refs/tags/v4.0.0",
        {"ref": "refs/tags/v4.0.0", "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, tag) == [
        "build",
        "scan",
        "sign",
        "publish",
        "github-release",
        "production",
    ]
    second = release_tags(bench.client(), repo.repository)
    release = second["4.0.0"]
    assert release != main_digest
    assert {t for t, d in second.items() if d == release} == {
        "4.0.0",
        "4.0",
        "4",
        "latest",
        f"sha-{repo.head[:7]}",
        "production",
    }
    assert "## Release 4.0.0" in (runner.workdir / "summary.md").read_text()

    inputs = {"tag": "production", "version": "4.0.0"}
    payload = {"inputs": inputs, "ref": "refs/heads/main", "repository": {"default_branch": "main"}}
    rollback = Event("workflow_dispatch", "refs/heads/main", payload, inputs=inputs)
    assert runner.run(workflow, rollback) == ["rollback"]
    third = release_tags(bench.client(), repo.repository)
    assert third["production"] == release, "production points at the verified 4.0.0"
    assert third["4.0.0"] == release, "the immutable version tag did not move"

    bad = {"tag": "4.0.0", "version": "4.0.0"}
    refused = Event("workflow_dispatch", "refs/heads/main", {**payload, "inputs": bad}, inputs=bad)
    with pytest.raises(AssertionError, match="immutable tag"):
        runner.run(workflow, refused)
    assert release_tags(bench.client(), repo.repository)["4.0.0"] == release
