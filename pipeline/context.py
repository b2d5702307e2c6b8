"""The release context: which system runs us, for which event, on which commit. Pure.

`detect(environ, read_event=..., git=...)` reads the variables each CI system sets, exactly as it
sets them, and the facts of the local git checkout (`GitFacts`, read by `pipeline.adapters.git`):

- GitHub Actions (`GITHUB_ACTIONS=true`): GITHUB_EVENT_NAME, GITHUB_REF, GITHUB_REF_NAME,
  GITHUB_REF_TYPE, GITHUB_SHA, GITHUB_EVENT_PATH (payload: repository.default_branch,
  pull_request.number, head_commit.timestamp), GITHUB_SERVER_URL + GITHUB_REPOSITORY;
- GitLab CI (`GITLAB_CI=true`): CI_PIPELINE_SOURCE, CI_COMMIT_TAG, CI_COMMIT_BRANCH,
  CI_COMMIT_REF_NAME, CI_COMMIT_SHA, CI_MERGE_REQUEST_IID, CI_DEFAULT_BRANCH, CI_PROJECT_URL
  (CI_COMMIT_TIMESTAMP when the checkout is not the commit);
- otherwise the local git repository: HEAD, its commit time, branch, a release tag pointing
  exactly at HEAD, dirty state.

In every context the known release versions come from the repository's release tags; they decide
which floating tags move. The commit time is the commit's, never the wall clock.
`pipeline.engine.loading.load_context` wires in the real event file and git reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pipeline.errors import SpecError
from pipeline.versions import exact_release_version, release_version, release_versions

System = Literal["github", "gitlab", "local"]
EventKind = Literal["tag", "branch", "pull_request", "dispatch", "local"]

_SHA = re.compile(r"[0-9a-f]{40}")
GITHUB_PR_EVENTS = ("pull_request", "pull_request_target")
GITHUB_DISPATCH_EVENTS = ("workflow_dispatch", "repository_dispatch", "schedule", "workflow_call")
GITLAB_PR_SOURCES = ("merge_request_event", "external_pull_request_event")
GITLAB_DISPATCH_SOURCES = (
    "web",
    "api",
    "trigger",
    "schedule",
    "pipeline",
    "parent_pipeline",
    "chat",
    "webide",
)


@dataclass(frozen=True, kw_only=True)
class GitFacts:
    """What the local checkout says (read by `pipeline.adapters.git.read_git_facts`)."""

    sha: str
    commit_time: str | None  # ISO 8601 UTC, committer time
    branch: str | None  # None when HEAD is detached
    head_tags: tuple[str, ...] = ()  # tags pointing exactly at HEAD
    tags: tuple[str, ...] = ()  # every tag name in the repository
    dirty: bool = False  # tracked files changed (untracked files do not count)
    default_branch: str | None = None  # from refs/remotes/origin/HEAD
    remote_url: str | None = None  # origin, as an https URL without credentials
    shallow: bool = False


@dataclass(frozen=True, kw_only=True)
class ReleaseContext:
    system: System
    event: EventKind
    ref_name: str
    sha: str  # 40 hex
    commit_time: str | None  # ISO 8601 UTC (YYYY-MM-DDTHH:MM:SSZ) of the commit
    tag: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    default_branch: str | None = None
    source_url: str | None = None
    dirty: bool = False
    releases: tuple[str, ...] = ()  # known release versions, lowest first
    # Every git tag name of the repository (and this run's tag): per-image release tags
    # (`api/v{{version}}`) find their own known releases in it.
    git_tags: tuple[str, ...] = ()
    shallow: bool = False  # the release list came from a shallow checkout
    # Where the run is, for the provenance: the CI run's URL, and the CI definition that runs it
    # (GitHub's workflow ref `owner/repo/.github/workflows/x.yml@refs/…`, GitLab's CI config).
    run_url: str | None = None
    workflow_ref: str | None = None

    @property
    def git_ref(self) -> str | None:
        """The full git ref built: refs/tags/v1.2.3 or refs/heads/main."""
        if self.tag:
            return f"refs/tags/{self.tag}"
        if self.branch and self.event != "pull_request":
            return f"refs/heads/{self.branch}"
        return None

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def is_default_branch(self) -> bool:
        """A branch build of the default branch (never a tag or pull request build)."""
        return (
            self.event in ("branch", "dispatch")
            and self.tag is None
            and self.branch is not None
            and self.branch == self.default_branch
        )

    @property
    def commit_epoch(self) -> int | None:
        """The commit time as seconds since the epoch: SOURCE_DATE_EPOCH for reproducible builds."""
        if self.commit_time is None:
            return None
        return int(datetime.fromisoformat(self.commit_time).timestamp())

    def describe(self) -> str:
        what = {
            "tag": f"tag {self.tag}",
            "branch": f"branch {self.branch}",
            "pull_request": f"pull request #{self.pr_number}",
            "dispatch": f"manual run on {self.tag or self.branch or self.ref_name}",
            "local": "detached HEAD",
        }[self.event]
        text = f"{self.system} {what} at {self.short_sha}"
        if self.dirty:
            text += " (uncommitted changes)"
        return text

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["releases"] = list(self.releases)
        data["git_tags"] = list(self.git_tags)
        data["short_sha"] = self.short_sha
        return data


def _utc(text: str, origin: str) -> str:
    """ISO 8601 with any offset -> `YYYY-MM-DDTHH:MM:SSZ`."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"{origin}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_from_epoch(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _required(environ: Mapping[str, str], name: str, system: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise SpecError(f"{name}: not set, but {system} always sets it; is this really {system}?")
    return value


def _sha(environ: Mapping[str, str], name: str, system: str) -> str:
    value = _required(environ, name, system)
    if not _SHA.fullmatch(value):
        raise SpecError(f"{name}: {value!r} is not a commit sha (40 lowercase hex)")
    return value


def _versions(git: GitFacts | None, release_tag: str, current: str | None) -> tuple[str, ...]:
    return release_versions(_tag_names(git, current), release_tag)


def _tag_names(git: GitFacts | None, current: str | None) -> tuple[str, ...]:
    names = [*git.tags, *git.head_tags] if git else []
    if current is not None:
        names.append(current)
    return tuple(sorted(set(names)))


def detect(
    environ: Mapping[str, str],
    *,
    read_event: Callable[[str], str],
    git: GitFacts | None,
    release_tag: str = "v{{version}}",
    default_branch: str = "main",
    image_release_tags: tuple[str, ...] = (),
) -> ReleaseContext:
    """The context from the environment and the checkout's facts. Pure given its inputs.

    `default_branch` is the fallback (the spec's `ci.default_branch`) when nothing better is known.
    `image_release_tags` are the images' own release tag patterns (`api/v{{version}}`): on a
    local checkout a HEAD tag of one of them is a release too (CI names its tag itself).
    """
    if environ.get("GITHUB_ACTIONS") == "true":
        return _github(environ, read_event, git, release_tag)
    if environ.get("GITLAB_CI") == "true":
        return _gitlab(environ, git, release_tag, default_branch)
    return _local(git, release_tag, default_branch, image_release_tags)


def _facts_for(git: GitFacts | None, sha: str) -> GitFacts | None:
    return git if git is not None and git.sha == sha else None


def _github(
    environ: Mapping[str, str],
    read_event: Callable[[str], str],
    git: GitFacts | None,
    release_tag: str,
) -> ReleaseContext:
    system = "GitHub Actions"
    event_name = _required(environ, "GITHUB_EVENT_NAME", system)
    sha = _sha(environ, "GITHUB_SHA", system)
    ref = environ.get("GITHUB_REF", "")
    ref_name = environ.get("GITHUB_REF_NAME", "")
    ref_type = environ.get("GITHUB_REF_TYPE", "")
    payload = _github_payload(environ, read_event)

    repository = payload.get("repository")
    default = repository.get("default_branch") if isinstance(repository, dict) else None
    if not isinstance(default, str) or not default:
        raise SpecError(
            "GITHUB_EVENT_PATH: the event payload has no repository.default_branch "
            "(is it a GitHub event file?)"
        )

    tag: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    event: EventKind
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
    elif ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif ref_type == "tag" and ref_name:
        tag = ref_name
    elif ref_type == "branch" and ref_name and not ref.startswith("refs/pull/"):
        branch = ref_name

    if event_name in GITHUB_PR_EVENTS:
        event = "pull_request"
        pr_number = _github_pr_number(payload)
        tag = None
        branch = environ.get("GITHUB_HEAD_REF") or None
    elif event_name in GITHUB_DISPATCH_EVENTS:
        event = "dispatch"
    elif tag is not None:
        event = "tag"
    elif branch is not None:
        event = "branch"
    else:
        raise SpecError(
            f"GITHUB_REF: {ref!r} is neither a tag (refs/tags/…) nor a branch (refs/heads/…) "
            f"for event {event_name!r}"
        )

    facts = _facts_for(git, sha)
    commit_time = facts.commit_time if facts else None
    if commit_time is None:
        head = payload.get("head_commit")
        stamp = head.get("timestamp") if isinstance(head, dict) else None
        if isinstance(stamp, str) and stamp:
            commit_time = _utc(stamp, "GITHUB_EVENT_PATH: head_commit.timestamp")

    server = environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repo_name = environ.get("GITHUB_REPOSITORY", "")
    source = f"{server}/{repo_name}" if server and repo_name else None
    run_id, attempt = environ.get("GITHUB_RUN_ID", ""), environ.get("GITHUB_RUN_ATTEMPT", "1")
    run_url = f"{source}/actions/runs/{run_id}/attempts/{attempt}" if source and run_id else None
    return ReleaseContext(
        system="github",
        event=event,
        ref_name=ref_name or tag or branch or ref,
        sha=sha,
        commit_time=commit_time,
        tag=tag,
        branch=branch,
        pr_number=pr_number,
        default_branch=default,
        source_url=source,
        dirty=facts.dirty if facts else False,
        releases=_versions(git, release_tag, tag),
        git_tags=_tag_names(git, tag),
        shallow=git.shallow if git else False,
        run_url=run_url,
        workflow_ref=environ.get("GITHUB_WORKFLOW_REF") or None,
    )


def _github_payload(environ: Mapping[str, str], read_event: Callable[[str], str]) -> dict[str, Any]:
    path = _required(environ, "GITHUB_EVENT_PATH", "GitHub Actions")
    try:
        text = read_event(path)
    except OSError as exc:
        raise SpecError(f"GITHUB_EVENT_PATH: cannot read {path}: {exc.strerror or exc}") from None
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"GITHUB_EVENT_PATH: {path} is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise SpecError(f"GITHUB_EVENT_PATH: {path} is not a JSON object")
    return payload


def _github_pr_number(payload: Mapping[str, Any]) -> int:
    pull = payload.get("pull_request")
    number = pull.get("number") if isinstance(pull, dict) else None
    if number is None:
        number = payload.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise SpecError(
            "GITHUB_EVENT_PATH: the pull request event payload has no pull_request.number"
        )
    return number


def _gitlab(
    environ: Mapping[str, str], git: GitFacts | None, release_tag: str, fallback_default: str
) -> ReleaseContext:
    system = "GitLab CI"
    sha = _sha(environ, "CI_COMMIT_SHA", system)
    source = environ.get("CI_PIPELINE_SOURCE", "")
    commit_tag = environ.get("CI_COMMIT_TAG") or None
    commit_branch = environ.get("CI_COMMIT_BRANCH") or None
    ref_name = environ.get("CI_COMMIT_REF_NAME", "")

    tag: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    event: EventKind
    if source in GITLAB_PR_SOURCES:
        event = "pull_request"
        name = (
            "CI_MERGE_REQUEST_IID"
            if source == "merge_request_event"
            else "CI_EXTERNAL_PULL_REQUEST_IID"
        )
        raw = _required(environ, name, f"GitLab CI for {source} pipelines")
        if not raw.isdigit() or int(raw) < 1:
            raise SpecError(f"{name}: {raw!r} is not a merge request number")
        pr_number = int(raw)
        branch = environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or ref_name or None
    elif commit_tag is not None:
        tag = commit_tag
        event = "dispatch" if source in GITLAB_DISPATCH_SOURCES else "tag"
    elif commit_branch is not None:
        branch = commit_branch
        event = "dispatch" if source in GITLAB_DISPATCH_SOURCES else "branch"
    else:
        raise SpecError(
            "CI_COMMIT_TAG, CI_COMMIT_BRANCH: neither is set and CI_PIPELINE_SOURCE is "
            f"{source!r}; the pipeline runs for no tag, branch or merge request"
        )

    facts = _facts_for(git, sha)
    commit_time = facts.commit_time if facts else None
    if commit_time is None and environ.get("CI_COMMIT_TIMESTAMP"):
        commit_time = _utc(environ["CI_COMMIT_TIMESTAMP"], "CI_COMMIT_TIMESTAMP")
    return ReleaseContext(
        system="gitlab",
        event=event,
        ref_name=ref_name or tag or branch or "",
        sha=sha,
        commit_time=commit_time,
        tag=tag,
        branch=branch,
        pr_number=pr_number,
        default_branch=environ.get("CI_DEFAULT_BRANCH") or fallback_default,
        source_url=environ.get("CI_PROJECT_URL") or None,
        dirty=facts.dirty if facts else False,
        releases=_versions(git, release_tag, tag),
        git_tags=_tag_names(git, tag),
        shallow=git.shallow if git else False,
        run_url=environ.get("CI_JOB_URL") or environ.get("CI_PIPELINE_URL") or None,
        workflow_ref=_gitlab_config_ref(environ, tag, branch),
    )


def _gitlab_config_ref(
    environ: Mapping[str, str], tag: str | None, branch: str | None
) -> str | None:
    """GitLab's `ci_config_ref_uri` shape: `host/group/project//.gitlab-ci.yml@refs/tags/v1`."""
    project = environ.get("CI_PROJECT_URL", "").removeprefix("https://").removeprefix("http://")
    config = environ.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
    ref = f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else None
    return f"{project}//{config}@{ref}" if project and ref else None


def _local(
    git: GitFacts | None,
    release_tag: str,
    fallback_default: str,
    image_release_tags: tuple[str, ...] = (),
) -> ReleaseContext:
    if git is None:
        raise SpecError(
            "local context: not inside a git repository with a commit; a release is built from "
            "a commit (git init, git commit), or run in GitHub Actions or GitLab CI"
        )
    tagged = [(v, t) for t in git.head_tags if (v := release_version(t, release_tag)) is not None]
    # A HEAD tagged only with an image's own release tag releases that image (the spec's own
    # release tag wins when both are there; then the first image's pattern that matches).
    for pattern in image_release_tags:
        if tagged:
            break
        tagged = [
            (v, t) for t in git.head_tags if (v := exact_release_version(t, pattern)) is not None
        ]
    tag: str | None = None
    if tagged:
        tag = max(tagged, key=lambda item: (item[0], item[1]))[1]
    event: EventKind
    if tag is not None:
        event = "tag"
    elif git.branch is not None:
        event = "branch"
    else:
        event = "local"
    return ReleaseContext(
        system="local",
        event=event,
        ref_name=tag or git.branch or git.sha[:7],
        sha=git.sha,
        commit_time=git.commit_time,
        tag=tag,
        branch=git.branch if tag is None else None,
        pr_number=None,
        default_branch=git.default_branch or fallback_default,
        source_url=git.remote_url,
        dirty=git.dirty,
        releases=_versions(git, release_tag, tag),
        git_tags=_tag_names(git, tag),
        shallow=git.shallow,
    )


def in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true" or environ.get("GITLAB_CI") == "true"
