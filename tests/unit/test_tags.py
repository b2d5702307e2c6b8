"""The tag policy, table-driven: every context kind in GitHub, GitLab and local git, the
floating-tag rule, v0, pre-releases, non-semver tags, branch sanitising and the custom rules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from pipeline.context import GitFacts, ReleaseContext, detect
from pipeline.spec import (
    BranchTag,
    PullRequestTag,
    RawTag,
    SemverTag,
    ShaTag,
    TagPolicy,
)
from pipeline.tags import TagSet, compute, sanitize
from pipeline.versions import release_version, release_versions

SHA = "0123456789abcdef0123456789abcdef01234567"
S7 = "sha-0123456"
TIME = "2024-05-01T10:00:00Z"
DEFAULT = TagPolicy()


def facts(
    *, branch: str | None = None, head_tags: tuple[str, ...] = (), tags: tuple[str, ...] = ()
) -> GitFacts:
    return GitFacts(
        sha=SHA, commit_time=TIME, branch=branch, head_tags=head_tags, tags=tags + head_tags
    )


def github(
    event: str = "push",
    ref: str = "refs/heads/main",
    *,
    pr: int | None = None,
    tags: tuple[str, ...] = (),
    default: str = "main",
) -> ReleaseContext:
    kind, _, name = ref.removeprefix("refs/").partition("/")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": name,
        "GITHUB_REF_TYPE": {"tags": "tag", "heads": "branch"}.get(kind, "branch"),
        "GITHUB_SHA": SHA,
        "GITHUB_EVENT_PATH": "/github/workflow/event.json",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/web",
    }
    payload: dict[str, object] = {"repository": {"default_branch": default}}
    if pr is not None:
        payload["pull_request"] = {"number": pr}
        env["GITHUB_REF"] = f"refs/pull/{pr}/merge"
        env["GITHUB_REF_NAME"] = f"{pr}/merge"
        env["GITHUB_HEAD_REF"] = "feature"
    return detect(env, read_event=lambda _path: json.dumps(payload), git=facts(tags=tags))


def gitlab(
    source: str = "push",
    *,
    tag: str | None = None,
    branch: str | None = None,
    mr: int | None = None,
    tags: tuple[str, ...] = (),
) -> ReleaseContext:
    env = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": source,
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_REF_NAME": tag or branch or "feature",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_URL": "https://gitlab.example.com/acme/web",
    }
    if tag:
        env["CI_COMMIT_TAG"] = tag
    if branch:
        env["CI_COMMIT_BRANCH"] = branch
    if mr is not None:
        env["CI_MERGE_REQUEST_IID"] = str(mr)
    return detect(env, read_event=_no_event, git=facts(tags=tags))


def local(
    *, branch: str | None = "main", head_tags: tuple[str, ...] = (), tags: tuple[str, ...] = ()
) -> ReleaseContext:
    git = facts(branch=branch, head_tags=head_tags, tags=tags)
    return detect({}, read_event=_no_event, git=git)


def _no_event(path: str) -> str:
    raise AssertionError(f"no event file is read here ({path})")


def tag_ctx(system: str, tag: str, known: tuple[str, ...] = ()) -> ReleaseContext:
    if system == "github":
        return github("push", f"refs/tags/{tag}", tags=known)
    if system == "gitlab":
        return gitlab("push", tag=tag, tags=known)
    return local(head_tags=(tag,), tags=known)


def branch_ctx(system: str, branch: str) -> ReleaseContext:
    if system == "github":
        return github("push", f"refs/heads/{branch}")
    if system == "gitlab":
        return gitlab("push", branch=branch)
    return local(branch=branch)


SYSTEMS = ("github", "gitlab", "local")


@dataclass(frozen=True)
class Case:
    id: str
    ctx: ReleaseContext
    expected: tuple[str, ...]
    policy: TagPolicy = DEFAULT
    version: str | None = None
    publish: bool = True
    warning: str | None = None
    immutable: tuple[str, ...] = field(default=())


# --- release tags under the default policy, in all three systems --------------------------------

RELEASE_TABLE: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str | None]] = [
    # (id, git tag, other known tags, expected tags, version)
    ("first-release", "v1.2.3", (), ("1.2.3", "1.2", "1", "latest", S7), "1.2.3"),
    ("bare-version-tag", "1.2.3", (), ("1.2.3", "1.2", "1", "latest", S7), "1.2.3"),
    ("v0-has-no-major", "v0.3.1", ("v0.3.0",), ("0.3.1", "0.3", "latest", S7), "0.3.1"),
    ("backport-after-2.0", "v1.4.7", ("v1.4.6", "v2.0.0"), ("1.4.7", "1.4", "1", S7), "1.4.7"),
    ("backport-under-1.5", "v1.4.7", ("v1.5.0", "v2.0.0"), ("1.4.7", "1.4", S7), "1.4.7"),
    ("older-patch", "v1.4.7", ("v1.4.8",), ("1.4.7", S7), "1.4.7"),
    (
        "rc-of-next-ignored",
        "v2.0.0",
        ("v1.9.0", "v2.1.0-rc.1"),
        ("2.0.0", "2.0", "2", "latest", S7),
        "2.0.0",
    ),
    ("pre-release", "v2.1.0-rc.1", ("v2.0.0",), ("2.1.0-rc.1", S7), "2.1.0-rc.1"),
    ("pre-release-first", "v0.1.0-alpha", (), ("0.1.0-alpha", S7), "0.1.0-alpha"),
    (
        "re-run-same-version",
        "v1.2.3",
        ("v1.2.3", "v1.2.2"),
        ("1.2.3", "1.2", "1", "latest", S7),
        "1.2.3",
    ),
    (
        "build-metadata",
        "v1.0.0+build.5",
        (),
        ("1.0.0_build.5", "1.0", "1", "latest", S7),
        "1.0.0+build.5",
    ),
    (
        "non-semver-tags-ignored",
        "v3.0.0",
        ("nightly", "v9", "release-x"),
        ("3.0.0", "3.0", "3", "latest", S7),
        "3.0.0",
    ),
]


def _release_cases() -> list[Case]:
    cases = []
    for system in SYSTEMS:
        for case_id, tag, known, expected, version in RELEASE_TABLE:
            cases.append(
                Case(
                    id=f"{system}-{case_id}",
                    ctx=tag_ctx(system, tag, known),
                    expected=expected,
                    version=version,
                )
            )
    return cases


NON_SEMVER: list[Case] = [
    Case(
        "github-non-semver-tag",
        github("push", "refs/tags/release-2024"),
        (S7,),
        warning="not a release tag",
    ),
    Case("gitlab-non-semver-tag", gitlab(tag="v1.2"), (S7,), warning="not a release tag"),
    Case(
        "github-two-part-version",
        github("push", "refs/tags/v1.2"),
        (S7,),
        warning="not a release tag",
    ),
    Case(
        "github-leading-zero",
        github("push", "refs/tags/v01.2.3"),
        (S7,),
        warning="not a release tag",
    ),
    # Locally, a tag at HEAD that is not a release tag does not make a release: the branch rules.
    Case(
        "local-non-release-tag-on-branch",
        local(branch="main", head_tags=("deployed",)),
        ("main", S7),
    ),
]

BRANCHES: list[Case] = [
    *[Case(f"{s}-branch-main", branch_ctx(s, "main"), ("main", S7)) for s in SYSTEMS],
    *[
        Case(f"{s}-branch-slash", branch_ctx(s, "feature/login-form"), ("feature-login-form", S7))
        for s in SYSTEMS
    ],
    Case(
        "github-branch-spaces-and-symbols",
        github(ref="refs/heads/fix/Bug #12 (hot)"),
        ("fix-Bug-12-hot-", S7),
    ),
    Case("gitlab-branch-leading-dot", gitlab(branch=".hidden"), ("hidden", S7)),
    Case("local-branch-leading-dash", local(branch="-x/y"), ("x-y", S7)),
    Case("local-branch-unicode", local(branch="fix/ü-umlaut"), ("fix--umlaut", S7)),
    Case(
        "github-branch-keeps-case-dots-underscores",
        github(ref="refs/heads/Release_1.x"),
        ("Release_1.x", S7),
    ),
    Case("gitlab-branch-too-long", gitlab(branch="b" * 200), ("b" * 128, S7)),
    Case("local-detached-head", local(branch=None), (S7,), warning="detached"),
]

PULL_REQUESTS: list[Case] = [
    Case("github-pull-request", github("pull_request", pr=42), ("pr-42", S7), publish=False),
    Case(
        "github-pull-request-target",
        github("pull_request_target", pr=7),
        ("pr-7", S7),
        publish=False,
    ),
    Case("gitlab-merge-request", gitlab("merge_request_event", mr=9), ("pr-9", S7), publish=False),
]

DISPATCH: list[Case] = [
    Case("github-dispatch-branch", github("workflow_dispatch", "refs/heads/main"), ("main", S7)),
    Case(
        "github-dispatch-tag",
        github("workflow_dispatch", "refs/tags/v1.2.3"),
        ("1.2.3", "1.2", "1", "latest", S7),
        version="1.2.3",
    ),
    Case("github-schedule", github("schedule", "refs/heads/main"), ("main", S7)),
    Case(
        "github-release-event",
        github("release", "refs/tags/v3.1.0"),
        ("3.1.0", "3.1", "3", "latest", S7),
        version="3.1.0",
    ),
    Case("gitlab-web-branch", gitlab("web", branch="develop"), ("develop", S7)),
    Case("gitlab-schedule", gitlab("schedule", branch="main"), ("main", S7)),
    Case(
        "gitlab-api-tag",
        gitlab("api", tag="v0.0.1"),
        ("0.0.1", "0.0", "latest", S7),
        version="0.0.1",
    ),
]

_REL = tag_ctx("github", "v1.2.3", ("v1.2.2",))
_RC = tag_ctx("gitlab", "v2.0.0-rc.1", ("v1.0.0",))
_BACKPORT = tag_ctx("local", "v1.4.7", ("v2.0.0",))
_MAIN = branch_ctx("github", "main")
_FEATURE = branch_ctx("gitlab", "feature/x")
_PR = gitlab("merge_request_event", mr=7)


def rules(*r: object, **kw: object) -> TagPolicy:
    return TagPolicy(rules=tuple(r), **kw)  # type: ignore[arg-type]


CUSTOM: list[Case] = [
    Case(
        "metadata-action-style",
        _REL,
        ("v1.2.3", "1.2", "latest", S7),
        rules(
            SemverTag(pattern="v{{version}}"), SemverTag(pattern="{{major}}.{{minor}}"), ShaTag()
        ),
        version="1.2.3",
        immutable=("v1.2.3", S7),
    ),
    Case(
        "raw-placeholder",
        _REL,
        ("v1.2.3", "latest"),
        rules(SemverTag(pattern="{{raw}}")),
        version="1.2.3",
    ),
    Case(
        "major-minor-patch",
        _REL,
        ("1.2.3", "latest"),
        rules(SemverTag(pattern="{{major}}.{{minor}}.{{patch}}")),
        version="1.2.3",
        immutable=("1.2.3",),
    ),
    Case(
        "floating-pattern-skipped-on-rc",
        _RC,
        ("2.0.0-rc.1",),
        rules(SemverTag(pattern="{{version}}"), SemverTag(pattern="{{major}}.{{minor}}")),
        version="2.0.0-rc.1",
    ),
    Case(
        "raw-kept-on-rc",
        _RC,
        ("v2.0.0-rc.1",),
        rules(SemverTag(pattern="{{raw}}")),
        version="2.0.0-rc.1",
    ),
    Case(
        "floating-pattern-backport",
        _BACKPORT,
        ("1.4.7", "v1"),
        rules(SemverTag(pattern="{{version}}"), SemverTag(pattern="v{{major}}")),
        version="1.4.7",
    ),
    Case(
        "sha-long-no-prefix",
        _MAIN,
        (SHA,),
        rules(ShaTag(prefix="", format="long")),
        immutable=(SHA,),
    ),
    Case(
        "sha-12-custom-prefix",
        _MAIN,
        ("git-0123456789ab",),
        rules(ShaTag(prefix="git-", length=12)),
    ),
    Case(
        "raw-default-branch-on-main",
        _MAIN,
        ("edge", S7),
        rules(RawTag(value="edge", enable="default_branch"), ShaTag()),
    ),
    Case(
        "raw-default-branch-off-main",
        _FEATURE,
        (S7,),
        rules(RawTag(value="edge", enable="default_branch"), ShaTag()),
    ),
    Case(
        "raw-default-branch-not-on-tag",
        _REL,
        ("1.2.3", "latest", S7),
        rules(SemverTag(), RawTag(value="edge", enable="default_branch"), ShaTag()),
        version="1.2.3",
    ),
    Case(
        "raw-release-on-stable",
        _REL,
        ("stable", "latest"),
        rules(RawTag(value="stable", enable="release")),
        version="1.2.3",
    ),
    Case(
        "raw-release-not-on-rc",
        _RC,
        (),
        rules(RawTag(value="stable", enable="release")),
        version="2.0.0-rc.1",
    ),
    Case("raw-always-on-pr", _PR, ("nightly",), rules(RawTag(value="nightly")), publish=False),
    Case(
        "branch-rule-on-tag-gives-nothing",
        _REL,
        ("latest", S7),
        rules(BranchTag(), ShaTag()),
        version="1.2.3",
    ),
    Case(
        "pr-rule-custom-prefix",
        _PR,
        ("mr-7", S7),
        rules(PullRequestTag(prefix="mr-"), ShaTag()),
        publish=False,
    ),
    Case(
        "prefix-and-suffix",
        _REL,
        (
            "web-1.2.3-alpine",
            "web-1.2-alpine",
            "web-1-alpine",
            "web-latest-alpine",
            f"web-{S7}-alpine",
        ),
        TagPolicy(prefix="web-", suffix="-alpine"),
        version="1.2.3",
    ),
    Case("prefix-on-branch", _FEATURE, ("x-feature-x", f"x-{S7}"), TagPolicy(prefix="x-")),
    Case(
        "latest-false", _REL, ("1.2.3", "1.2", "1", S7), TagPolicy(latest="false"), version="1.2.3"
    ),
    Case(
        "latest-true-on-backport",
        _BACKPORT,
        ("1.4.7", "1.4", "1", "latest", S7),
        TagPolicy(latest="true"),
        version="1.4.7",
    ),
    Case(
        "latest-true-not-on-rc",
        _RC,
        ("2.0.0-rc.1", S7),
        TagPolicy(latest="true"),
        version="2.0.0-rc.1",
    ),
    Case("latest-true-not-on-branch", _MAIN, ("main", S7), TagPolicy(latest="true")),
    Case(
        "latest-before-sha-without-semver-rules",
        _REL,
        ("latest", S7),
        rules(ShaTag()),
        version="1.2.3",
    ),
    Case(
        "duplicates-dropped-immutable-kept",
        _REL,
        ("1.2.3", "latest"),
        rules(SemverTag(), RawTag(value="1.2.3")),
        version="1.2.3",
        immutable=("1.2.3",),
    ),
    Case(
        "release-tag-pattern",
        tag_ctx("github", "web/v2.0.0"),
        ("2.0.0", "2.0", "2", "latest", S7),
        TagPolicy(release_tag="web/v{{version}}"),
        version="2.0.0",
    ),
    Case(
        "release-tag-pattern-mismatch",
        tag_ctx("github", "api/v2.0.0"),
        (S7,),
        TagPolicy(release_tag="web/v{{version}}"),
        warning="not a release tag",
    ),
]

ALL_CASES = [*_release_cases(), *NON_SEMVER, *BRANCHES, *PULL_REQUESTS, *DISPATCH, *CUSTOM]


def test_there_are_at_least_fifty_cases() -> None:
    assert len(ALL_CASES) >= 50


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_compute(case: Case) -> None:
    result = compute(case.policy, case.ctx)
    assert result.names == case.expected
    assert result.version == case.version
    assert result.publish is case.publish
    if case.warning:
        assert any(case.warning in w for w in result.warnings), result.warnings
    else:
        assert result.warnings == ()
    if case.immutable:
        assert tuple(t.name for t in result.tags if t.immutable) == case.immutable


@pytest.mark.parametrize("system", SYSTEMS)
def test_default_immutability(system: str) -> None:
    result = compute(DEFAULT, tag_ctx(system, "v1.2.3"))
    assert {t.name: t.immutable for t in result.tags} == {
        "1.2.3": True,
        "1.2": False,
        "1": False,
        "latest": False,
        S7: True,
    }
    assert result.sha_tag == S7


def test_branch_and_pr_tags_float() -> None:
    assert [t.immutable for t in compute(DEFAULT, _MAIN).tags] == [False, True]
    assert [t.immutable for t in compute(DEFAULT, _PR).tags] == [False, True]


def test_sha_tag_carries_prefix_and_suffix() -> None:
    assert compute(TagPolicy(prefix="a-", suffix="-b"), _MAIN).sha_tag == f"a-{S7}-b"
    assert compute(rules(SemverTag()), _REL).sha_tag is None


def test_same_release_in_every_system_gives_identical_tags() -> None:
    """A tag push of v1.2.3 on commit C: locally, under GitHub's and GitLab's variables."""
    known = ("v1.0.0", "v1.2.2", "v1.3.0-rc.1", "v0.9.0")
    results: list[TagSet] = [compute(DEFAULT, tag_ctx(s, "v1.2.3", known)) for s in SYSTEMS]
    assert results[0] == results[1] == results[2]
    assert results[0].names == ("1.2.3", "1.2", "1", "latest", S7)
    contexts = [tag_ctx(s, "v1.2.3", known) for s in SYSTEMS]
    assert {(c.event, c.tag, c.sha, c.releases, c.commit_time) for c in contexts} == {
        ("tag", "v1.2.3", SHA, ("0.9.0", "1.0.0", "1.2.2", "1.2.3", "1.3.0-rc.1"), TIME)
    }


def test_shallow_checkout_warns_on_release() -> None:
    ctx = detect(
        {},
        read_event=_no_event,
        git=GitFacts(sha=SHA, commit_time=TIME, branch=None, head_tags=("v1.0.0",), shallow=True),
    )
    assert any("shallow" in w for w in compute(DEFAULT, ctx).warnings)


def test_overlong_immutable_tag_is_skipped_with_a_warning() -> None:
    ctx = tag_ctx("github", "v1.0.0-" + "a" * 130)
    result = compute(DEFAULT, ctx)
    assert result.names == (S7,)
    assert any("longer than" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("tag", "pattern", "expected"),
    [
        ("v1.2.3", "v{{version}}", "1.2.3"),
        ("1.2.3", "v{{version}}", "1.2.3"),
        ("web-1.2.3", "web-{{version}}", "1.2.3"),
        ("1.2.3-web", "{{version}}-web", "1.2.3"),
        ("v1.2.3-rc.1", "v{{ version }}", "1.2.3-rc.1"),
        ("v1.2", "v{{version}}", None),
        ("x1.2.3", "v{{version}}", None),
        ("v", "v{{version}}", None),
        ("vv1.2.3", "v{{version}}", None),
    ],
)
def test_release_version(tag: str, pattern: str, expected: str | None) -> None:
    version = release_version(tag, pattern)
    assert (str(version) if version else None) == expected


def test_release_versions_sorted_and_distinct() -> None:
    names = ["v1.10.0", "v1.9.0", "1.9.0", "v2.0.0-rc.1", "v2.0.0", "junk"]
    assert release_versions(names, "v{{version}}") == ("1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0")


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("main", "main"),
        ("feature/a", "feature-a"),
        ("a//b", "a-b"),
        ("...x", "x"),
        ("-.-x", "x"),
        ("a b\tc", "a-b-c"),
        ("UPPER_case.1", "UPPER_case.1"),
        ("x" * 300, "x" * 128),
        ("///", ""),
    ],
)
def test_sanitize(branch: str, expected: str) -> None:
    assert sanitize(branch) == expected
