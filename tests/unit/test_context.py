"""Release context detection: GitHub Actions, GitLab CI and local git, from their variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import context as context_module
from pipeline.adapters.git import browsable_url
from pipeline.context import GitFacts, ReleaseContext, detect
from pipeline.engine.loading import load_context
from pipeline.errors import GitError, SpecError
from pipeline.spec import Image, Spec
from pipeline.specload import LoadedSpec

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
TIME = "2024-05-01T10:00:00Z"
FACTS = GitFacts(
    sha=SHA,
    commit_time=TIME,
    branch=None,
    tags=("v1.0.0", "v1.1.0", "nightly"),
    dirty=True,
    remote_url="https://example.com/acme/web",
)

GITHUB_BASE = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SHA": SHA,
    "GITHUB_EVENT_PATH": "/home/runner/work/_temp/_github_workflow/event.json",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/web",
}


def event(payload: Any) -> Any:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return lambda _path: text


def gh(env: dict[str, str], payload: Any, git: GitFacts | None = FACTS) -> ReleaseContext:
    return detect({**GITHUB_BASE, **env}, read_event=event(payload), git=git)


REPO = {"repository": {"default_branch": "trunk"}}

GITHUB_CASES: list[tuple[str, dict[str, str], dict[str, Any], dict[str, Any]]] = [
    (
        "push-branch",
        {
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/trunk",
            "GITHUB_REF_NAME": "trunk",
            "GITHUB_REF_TYPE": "branch",
        },
        REPO,
        {"event": "branch", "branch": "trunk", "tag": None, "ref_name": "trunk"},
    ),
    (
        "push-tag",
        {
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/tags/v1.2.0",
            "GITHUB_REF_NAME": "v1.2.0",
            "GITHUB_REF_TYPE": "tag",
        },
        REPO,
        {
            "event": "tag",
            "tag": "v1.2.0",
            "branch": None,
            "releases": ("1.0.0", "1.1.0", "1.2.0"),
        },
    ),
    (
        "pull-request",
        {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REF": "refs/pull/42/merge",
            "GITHUB_REF_NAME": "42/merge",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_HEAD_REF": "feature/x",
        },
        {**REPO, "pull_request": {"number": 42}},
        {"event": "pull_request", "pr_number": 42, "branch": "feature/x", "ref_name": "42/merge"},
    ),
    (
        "pull-request-number-at-top",
        {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/5/merge"},
        {**REPO, "number": 5},
        {"event": "pull_request", "pr_number": 5},
    ),
    (
        "pull-request-target",
        {"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/trunk"},
        {**REPO, "pull_request": {"number": 8}},
        {"event": "pull_request", "pr_number": 8, "branch": None},
    ),
    (
        "workflow-dispatch-branch",
        {"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/heads/trunk"},
        REPO,
        {"event": "dispatch", "branch": "trunk", "tag": None},
    ),
    (
        "workflow-dispatch-tag",
        {"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/tags/v2.0.0"},
        REPO,
        {"event": "dispatch", "tag": "v2.0.0", "branch": None},
    ),
    (
        "release-event",
        {
            "GITHUB_EVENT_NAME": "release",
            "GITHUB_REF": "refs/tags/v1.1.0",
            "GITHUB_REF_NAME": "v1.1.0",
        },
        REPO,
        {"event": "tag", "tag": "v1.1.0"},
    ),
    (
        "ref-type-without-ref",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v3.0.0"},
        REPO,
        {"event": "tag", "tag": "v3.0.0"},
    ),
    (
        "tag-with-slash",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/web/v1.0.0"},
        REPO,
        {"event": "tag", "tag": "web/v1.0.0"},
    ),
]


@pytest.mark.parametrize(
    ("env", "payload", "expected"), [c[1:] for c in GITHUB_CASES], ids=[c[0] for c in GITHUB_CASES]
)
def test_github(env: dict[str, str], payload: dict[str, Any], expected: dict[str, Any]) -> None:
    ctx = gh(env, payload)
    assert ctx.system == "github"
    assert ctx.sha == SHA
    assert ctx.default_branch == "trunk"
    assert ctx.source_url == "https://github.com/acme/web"
    assert ctx.commit_time == TIME
    assert ctx.dirty is True  # the checkout is the commit: its facts count
    for key, value in expected.items():
        assert getattr(ctx, key) == value, key


def test_github_commit_time_from_payload_when_checkout_differs() -> None:
    other = GitFacts(sha=OTHER, commit_time="2000-01-01T00:00:00Z", branch=None, dirty=True)
    payload = {**REPO, "head_commit": {"timestamp": "2024-05-01T12:00:00+02:00"}}
    ctx = gh({"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/trunk"}, payload, other)
    assert ctx.commit_time == TIME
    assert ctx.dirty is False


def test_github_without_checkout_or_timestamp_has_no_commit_time() -> None:
    ctx = gh({"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/trunk"}, REPO, None)
    assert ctx.commit_time is None
    assert ctx.commit_epoch is None
    assert ctx.releases == ()


GITHUB_ERRORS: list[tuple[str, dict[str, str], Any, str]] = [
    (
        "payload-not-json",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"},
        "{not json",
        "GITHUB_EVENT_PATH: /home/runner/work/_temp/_github_workflow/event.json is not JSON (",
    ),
    (
        "payload-not-object",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"},
        [1, 2],
        "GITHUB_EVENT_PATH: /home/runner/work/_temp/_github_workflow/event.json "
        "is not a JSON object",
    ),
    (
        "no-default-branch",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"},
        {"repository": {}},
        "GITHUB_EVENT_PATH: the event payload has no repository.default_branch "
        "(is it a GitHub event file?)",
    ),
    (
        "pr-without-number",
        {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/1/merge"},
        {**REPO, "pull_request": {}},
        "GITHUB_EVENT_PATH: the pull request event payload has no pull_request.number",
    ),
    (
        "bad-sha",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_SHA": "abc123"},
        REPO,
        "GITHUB_SHA: 'abc123' is not a commit sha (40 lowercase hex)",
    ),
    (
        "no-event-name",
        {"GITHUB_REF": "refs/heads/main"},
        REPO,
        "GITHUB_EVENT_NAME: not set, but GitHub Actions always sets it; "
        "is this really GitHub Actions?",
    ),
    (
        "no-event-path",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": ""},
        REPO,
        "GITHUB_EVENT_PATH: not set, but GitHub Actions always sets it; "
        "is this really GitHub Actions?",
    ),
    (
        "unknown-ref",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/notes/x"},
        REPO,
        "GITHUB_REF: 'refs/notes/x' is neither a tag (refs/tags/…) nor a branch (refs/heads/…) "
        "for event 'push'",
    ),
    (
        "bad-timestamp",
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"},
        {**REPO, "head_commit": {"timestamp": "yesterday"}},
        "GITHUB_EVENT_PATH: head_commit.timestamp: 'yesterday' is not an ISO 8601 time",
    ),
]


@pytest.mark.parametrize(
    ("env", "payload", "message"), [c[1:] for c in GITHUB_ERRORS], ids=[c[0] for c in GITHUB_ERRORS]
)
def test_github_errors(env: dict[str, str], payload: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        gh(env, payload, None)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_github_unreadable_event_file() -> None:
    def missing(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    env = {**GITHUB_BASE, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
    with pytest.raises(SpecError) as info:
        detect(env, read_event=missing, git=None)
    assert str(info.value) == (
        "GITHUB_EVENT_PATH: cannot read /home/runner/work/_temp/_github_workflow/event.json: "
        "No such file or directory"
    )


GITLAB_BASE = {
    "GITLAB_CI": "true",
    "CI_COMMIT_SHA": SHA,
    "CI_DEFAULT_BRANCH": "trunk",
    "CI_PROJECT_URL": "https://gitlab.example.com/acme/web",
}

GITLAB_CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "push-branch",
        {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "trunk", "CI_COMMIT_REF_NAME": "trunk"},
        {"event": "branch", "branch": "trunk", "tag": None, "is_default_branch": True},
    ),
    (
        "push-tag",
        {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.2.0", "CI_COMMIT_REF_NAME": "v1.2.0"},
        {"event": "tag", "tag": "v1.2.0", "releases": ("1.0.0", "1.1.0", "1.2.0")},
    ),
    (
        "merge-request",
        {
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "CI_MERGE_REQUEST_IID": "17",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/x",
            "CI_COMMIT_REF_NAME": "feature/x",
        },
        {"event": "pull_request", "pr_number": 17, "branch": "feature/x"},
    ),
    (
        "external-pull-request",
        {"CI_PIPELINE_SOURCE": "external_pull_request_event", "CI_EXTERNAL_PULL_REQUEST_IID": "3"},
        {"event": "pull_request", "pr_number": 3},
    ),
    (
        "web-run-on-branch",
        {"CI_PIPELINE_SOURCE": "web", "CI_COMMIT_BRANCH": "develop"},
        {"event": "dispatch", "branch": "develop", "is_default_branch": False},
    ),
    (
        "schedule-on-default",
        {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "trunk"},
        {"event": "dispatch", "branch": "trunk", "is_default_branch": True},
    ),
    (
        "api-on-tag",
        {"CI_PIPELINE_SOURCE": "api", "CI_COMMIT_TAG": "v9.9.9"},
        {"event": "dispatch", "tag": "v9.9.9", "is_default_branch": False},
    ),
]


@pytest.mark.parametrize(
    ("env", "expected"), [c[1:] for c in GITLAB_CASES], ids=[c[0] for c in GITLAB_CASES]
)
def test_gitlab(env: dict[str, str], expected: dict[str, Any]) -> None:
    ctx = detect({**GITLAB_BASE, **env}, read_event=event("{}"), git=FACTS)
    assert ctx.system == "gitlab"
    assert ctx.sha == SHA
    assert ctx.default_branch == "trunk"
    assert ctx.source_url == "https://gitlab.example.com/acme/web"
    assert ctx.commit_time == TIME
    for key, value in expected.items():
        assert getattr(ctx, key) == value, key


def test_gitlab_commit_timestamp_when_checkout_differs() -> None:
    env = {
        **GITLAB_BASE,
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "trunk",
        "CI_COMMIT_TIMESTAMP": "2024-05-01T06:00:00-04:00",
    }
    other = GitFacts(sha=OTHER, commit_time="2000-01-01T00:00:00Z", branch=None)
    assert detect(env, read_event=event("{}"), git=other).commit_time == TIME


GITLAB_ERRORS: list[tuple[str, dict[str, str], str]] = [
    (
        "mr-without-iid",
        {"CI_PIPELINE_SOURCE": "merge_request_event"},
        "CI_MERGE_REQUEST_IID: not set, but GitLab CI for merge_request_event pipelines always "
        "sets it; is this really GitLab CI for merge_request_event pipelines?",
    ),
    (
        "mr-iid-not-number",
        {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "x"},
        "CI_MERGE_REQUEST_IID: 'x' is not a merge request number",
    ),
    (
        "nothing-to-build",
        {"CI_PIPELINE_SOURCE": "push"},
        "CI_COMMIT_TAG, CI_COMMIT_BRANCH: neither is set and CI_PIPELINE_SOURCE is 'push'; "
        "the pipeline runs for no tag, branch or merge request",
    ),
    (
        "no-sha",
        {"CI_COMMIT_SHA": "", "CI_COMMIT_BRANCH": "x"},
        "CI_COMMIT_SHA: not set, but GitLab CI always sets it; is this really GitLab CI?",
    ),
    (
        "bad-timestamp",
        {"CI_COMMIT_BRANCH": "x", "CI_COMMIT_TIMESTAMP": "now"},
        "CI_COMMIT_TIMESTAMP: 'now' is not an ISO 8601 time",
    ),
]


@pytest.mark.parametrize(
    ("env", "message"), [c[1:] for c in GITLAB_ERRORS], ids=[c[0] for c in GITLAB_ERRORS]
)
def test_gitlab_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError) as info:
        detect({**GITLAB_BASE, **env}, read_event=event("{}"), git=None)
    assert str(info.value) == message


LOCAL_CASES: list[tuple[str, GitFacts, dict[str, Any]]] = [
    (
        "branch",
        GitFacts(sha=SHA, commit_time=TIME, branch="main", tags=("v1.0.0",)),
        {"event": "branch", "branch": "main", "tag": None, "is_default_branch": True},
    ),
    (
        "release-tag-at-head-wins-over-branch",
        GitFacts(sha=SHA, commit_time=TIME, branch="main", head_tags=("v1.0.0",)),
        {"event": "tag", "tag": "v1.0.0", "branch": None, "ref_name": "v1.0.0"},
    ),
    (
        "highest-release-tag-at-head",
        GitFacts(sha=SHA, commit_time=TIME, branch=None, head_tags=("v1.0.0", "v1.0.1", "x")),
        {"event": "tag", "tag": "v1.0.1", "releases": ("1.0.0", "1.0.1")},
    ),
    (
        "other-tag-at-head-ignored",
        GitFacts(sha=SHA, commit_time=TIME, branch="dev", head_tags=("deployed",)),
        {"event": "branch", "branch": "dev", "tag": None, "is_default_branch": False},
    ),
    (
        "detached",
        GitFacts(sha=SHA, commit_time=TIME, branch=None),
        {"event": "local", "ref_name": "0123456", "branch": None},
    ),
    (
        "dirty-and-origin",
        GitFacts(
            sha=SHA,
            commit_time=TIME,
            branch="main",
            dirty=True,
            default_branch="develop",
            remote_url="https://example.com/acme/web",
        ),
        {
            "dirty": True,
            "default_branch": "develop",
            "source_url": "https://example.com/acme/web",
            "is_default_branch": False,
        },
    ),
]


@pytest.mark.parametrize(
    ("git", "expected"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES]
)
def test_local(git: GitFacts, expected: dict[str, Any]) -> None:
    ctx = detect({"CI": "true"}, read_event=event("{}"), git=git)  # plain CI=true is not GitHub
    assert ctx.system == "local"
    assert ctx.sha == SHA
    assert ctx.commit_time == TIME
    for key, value in expected.items():
        assert getattr(ctx, key) == value, key


def test_local_default_branch_falls_back_to_the_spec() -> None:
    ctx = detect(
        {},
        read_event=event("{}"),
        git=GitFacts(sha=SHA, commit_time=TIME, branch="x"),
        default_branch="trunk",
    )
    assert ctx.default_branch == "trunk"


def test_local_without_git_is_one_clear_error() -> None:
    with pytest.raises(SpecError) as info:
        detect({}, read_event=event("{}"), git=None)
    assert str(info.value) == (
        "local context: not inside a git repository with a commit; a release is built from a "
        "commit (git init, git commit), or run in GitHub Actions or GitLab CI"
    )


def test_release_tag_pattern_selects_releases() -> None:
    git = GitFacts(
        sha=SHA, commit_time=TIME, branch="main", tags=("web-1.0.0", "api-2.0.0", "0.5.0")
    )
    ctx = detect({}, read_event=event("{}"), git=git, release_tag="web-{{version}}")
    assert ctx.releases == ("0.5.0", "1.0.0")


def test_helpers_and_json() -> None:
    ctx = detect({}, read_event=event("{}"), git=FACTS)
    assert ctx.short_sha == "0123456"
    assert ctx.commit_epoch == 1714557600
    assert ctx.describe() == "local detached HEAD at 0123456 (uncommitted changes)"
    data = ctx.to_json()
    assert data["short_sha"] == "0123456"
    assert data["releases"] == ["1.0.0", "1.1.0"]
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "system", "event", "ref_name", "sha", "short_sha", "commit_time", "tag", "branch",
        "pr_number", "default_branch", "source_url", "dirty", "releases", "git_tags", "shallow",
        "run_url", "workflow_ref",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("ctx_env", "text"),
    [
        (
            {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.0.0"},
            "github tag v1.0.0 at 0123456",
        ),
        ({"GITHUB_EVENT_NAME": "pull_request"}, "github pull request #4 at 0123456"),
        (
            {"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/heads/main"},
            "github manual run on main at 0123456",
        ),
    ],
)
def test_describe(ctx_env: dict[str, str], text: str) -> None:
    payload = {**REPO, "pull_request": {"number": 4}}
    clean = GitFacts(sha=SHA, commit_time=TIME, branch=None)
    assert gh(ctx_env, payload, clean).describe() == text


# --- load_context: wiring the real reader --------------------------------------------------------


def _loaded(tmp_path: Path) -> LoadedSpec:
    spec = Spec(name="web", images=(Image(name="web", repository="acme/web"),))
    return LoadedSpec(spec=spec, path=tmp_path / "release.py", base_dir=tmp_path)


def test_load_context_in_ci_tolerates_a_missing_checkout(tmp_path: Path) -> None:
    def no_repo(path: Path) -> GitFacts:
        raise GitError(f"{path}: not inside a git repository")

    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(REPO))
    env = {
        **GITHUB_BASE,
        "GITHUB_EVENT_PATH": str(event_file),
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/trunk",
    }
    ctx = load_context(_loaded(tmp_path), env, read_git=no_repo)
    assert (ctx.system, ctx.branch, ctx.default_branch) == ("github", "trunk", "trunk")
    with pytest.raises(GitError, match="not inside a git repository"):
        load_context(_loaded(tmp_path), {}, read_git=no_repo)


def test_load_context_passes_spec_settings(tmp_path: Path) -> None:
    seen: list[Path] = []

    def fake(path: Path) -> GitFacts:
        seen.append(path)
        return GitFacts(sha=SHA, commit_time=TIME, branch="x", tags=("v1.0.0",))

    ctx = load_context(_loaded(tmp_path), {}, read_git=fake)
    assert seen == [tmp_path]
    assert ctx.default_branch == "main"  # the spec's ci.default_branch
    assert ctx.releases == ("1.0.0",)
    assert context_module.in_ci({"GITLAB_CI": "true"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/web.git", "https://github.com/acme/web"),
        (
            "https://user:token@gitlab.example.com/acme/web.git",
            "https://gitlab.example.com/acme/web",
        ),
        ("git@github.com:acme/web.git", "https://github.com/acme/web"),
        (
            "ssh://git@gitlab.example.com:2222/group/sub/web.git",
            "https://gitlab.example.com/group/sub/web",
        ),
        ("http://example.com/x/", "https://example.com/x"),
        ("/srv/git/web.git", None),
        ("file:///srv/git/web.git", None),
        ("../web", None),
    ],
)
def test_browsable_url(url: str, expected: str | None) -> None:
    assert browsable_url(url) == expected


def test_ci_run_and_definition_for_the_provenance(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(REPO))
    env = {
        **GITHUB_BASE,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/tags/v1.2.3",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW_REF": "acme/web/.github/workflows/release.yml@refs/tags/v1.2.3",
    }
    ctx = detect(env, read_event=lambda p: Path(p).read_text(), git=None)
    assert ctx.run_url == f"{ctx.source_url}/actions/runs/42/attempts/2"
    assert ctx.workflow_ref == "acme/web/.github/workflows/release.yml@refs/tags/v1.2.3"
    assert ctx.git_ref == "refs/tags/v1.2.3"
    gitlab = detect(
        {
            "GITLAB_CI": "true",
            "CI_COMMIT_SHA": SHA,
            "CI_PIPELINE_SOURCE": "push",
            "CI_COMMIT_TAG": "v1.2.3",
            "CI_PROJECT_URL": "https://gitlab.example/acme/web",
            "CI_JOB_URL": "https://gitlab.example/acme/web/-/jobs/7",
        },
        read_event=lambda p: "",
        git=None,
    )
    assert gitlab.run_url == "https://gitlab.example/acme/web/-/jobs/7"
    assert gitlab.workflow_ref == "gitlab.example/acme/web//.gitlab-ci.yml@refs/tags/v1.2.3"
