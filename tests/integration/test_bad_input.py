"""Bad input, black-box through `python -m pipeline`: each case exits with its class's code (2 for
a spec, flag, context or reference; 13 for git; 5 for an input that cannot be reached and may not
be stood in for; 9 for a promotion to what was never published) with exactly one line on stderr,
`error: …`, naming the field or argument at fault; no traceback, no secret, and nothing reaches
the registry (checked through the registry API after every case and once more at the end).

The unit tests (tests/unit/test_validate.py, test_context.py, test_refs.py) check the same rules
one function at a time; this file is the end-to-end proof of what a user sees. Two inputs are
deliberately NOT errors and are tested on their own: a git tag that is not a release (a warning,
exit 0) and a dirty tree with --allow-dirty (gets past the dirty check).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.support.bench import Bench
from tests.support.ci_env import github_env
from tests.support.release_repo import ReleaseRepo, clone_repo, make_repo

REPOSITORY = "bad/input"  # the spec of every case names this repository: it must stay empty
SECOND_REPOSITORY = "bad/input-two"  # the second image of the duplicate-name case
REPOSITORIES = (REPOSITORY, SECOND_REPOSITORY)
DEAD_REGISTRY = "127.0.0.1:9"  # nothing listens there: a case that got as far as pushing fails
ZERO_SHA = "0" * 40
PLATFORMS = 'platforms=("linux/amd64", "linux/arm64")'
SMOKE = 'smoke_test=("python3", "-c", "import platform; print(platform.machine())")'

Category = Literal["spec", "cli", "context", "reference", "inputs"]


@dataclass(frozen=True)
class Case:
    id: str
    category: Category
    args: tuple[str, ...]  # the command line after `python -m pipeline`
    names: str  # the field or argument the error line must name
    edits: tuple[tuple[str, str], ...] = ()  # (old, new) replacements in the spec, committed
    prepare: Callable[[ReleaseRepo], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    github_event: str | None = None  # run as GitHub Actions with this event payload
    gitlab: bool = False  # run as GitLab CI (CI_COMMIT_SHA = the checkout's HEAD)
    known_defect: str | None = None  # strict xfail: the product does not meet the rule yet
    code: int = 2  # the exit code of the error class


def spec(case_id: str, old: str, new: str, names: str, *more: tuple[str, str]) -> Case:
    """A spec mistake, shown by `pipeline plan` (the first thing a user runs)."""
    return Case(case_id, "spec", ("plan",), names, edits=((old, new), *more))


def cli(case_id: str, *args: str, names: str, known_defect: str | None = None) -> Case:
    return Case(case_id, "cli", args, names, known_defect=known_defect)


def github(case_id: str, payload: str, names: str, **env: str) -> Case:
    return Case(case_id, "context", ("plan",), names, github_event=payload, env=env)


def gitlab(case_id: str, names: str, **env: str) -> Case:
    return Case(case_id, "context", ("plan",), names, env=env, gitlab=True)


def reference(case_id: str, ref: str, names: str) -> Case:
    return Case(case_id, "reference", ("verify", ref), names)


def _write(name: str, text: str) -> Callable[[ReleaseRepo], None]:
    def prepare(repo: ReleaseRepo) -> None:
        (repo.path / name).write_text(text)
        repo.commit(f"add {name}")

    return prepare


def _dirty(repo: ReleaseRepo) -> None:
    (repo.path / "app" / "server.py").write_text("# an uncommitted change\n")


_IMPORT = ("from pipeline.spec import (", "from pipeline.spec import (\n    RetryPolicy,")
_DEFAULT_BRANCH = json.dumps({"repository": {"default_branch": "main"}})

SPEC_CASES = [
    # keywords Python refuses when the spec file runs: file:line and a close spelling
    spec("typo-in-image-field", "platforms=(", "platfroms=(", "'platfroms'"),
    spec("typo-in-scan-field", "fail_on=(", "fail_onn=(", "'fail_onn'"),
    spec("missing-repository", f'repository="{REPOSITORY}",', "", "repository"),
    # types, read from the dataclass annotations
    spec("platforms-is-a-string", PLATFORMS, 'platforms="linux/amd64"', "images[0].platforms"),
    spec("platforms-is-a-list", PLATFORMS, 'platforms=["linux/amd64"]', "images[0].platforms"),
    spec(
        "retries-is-a-string",
        "ci=CIOptions(",
        'retry=RetryPolicy(attempts="5"),\n    ci=CIOptions(',
        "retry.attempts",
        _IMPORT,
    ),
    spec("bool-is-a-string", "ignore_unfixed=True", 'ignore_unfixed="yes"', "scan.ignore_unfixed"),
    spec("smoke-test-is-a-string", SMOKE, 'smoke_test="python3 -V"', "images[0].smoke_test"),
    spec("latest-not-a-choice", "TagPolicy(", 'TagPolicy(latest="yes", ', "tags.latest"),
    # platforms
    spec("no-platform", PLATFORMS, "platforms=()", "images[0].platforms"),
    spec(
        "duplicate-platform",
        PLATFORMS,
        'platforms=("linux/amd64", "linux/amd64")',
        "images[0].platforms[1]",
    ),
    spec(
        "unknown-variant",
        PLATFORMS,
        'platforms=("linux/amd64/v9", "linux/arm64")',
        "images[0].platforms[0]",
    ),
    spec(
        "unsupported-os",
        PLATFORMS,
        'platforms=("linux/amd64", "windows/arm64")',
        "images[0].platforms[1]",
    ),
    spec("platform-without-os", PLATFORMS, 'platforms=("amd64",)', "images[0].platforms[0]"),
    # names, repositories and hosts
    spec(
        "uppercase-repository",
        f'repository="{REPOSITORY}"',
        'repository="Bad/Input"',
        "images[0].repository",
    ),
    spec(
        "repository-with-host",
        f'repository="{REPOSITORY}"',
        f'repository="ghcr.io/{REPOSITORY}"',
        "images[0].repository",
    ),
    spec(
        "duplicate-image-name",
        "images=(",
        f'images=(\n        Image(name="sample-app", repository="{SECOND_REPOSITORY}"),',
        "images[1].name",
    ),
    spec(
        "registry-host-with-scheme",
        'host="local"',
        'host="https://registry.example.com/"',
        "registry.host",
    ),
    spec(
        "registry-port-too-big",
        'host="local"',
        'host="registry.example.com:99999"',
        "registry.host",
    ),
    spec(
        "half-the-credentials",
        'password_env="PIPELINE_REGISTRY_PASSWORD"',
        "password_env=None",
        "registry.password_env",
    ),
    # tags, scan, sign, CI
    spec(
        "unknown-template-variable",
        'release_tag="v{{version}}"',
        'release_tag="v{{versoin}}"',
        "tags.release_tag",
    ),
    spec(
        "release-tag-without-version",
        'release_tag="v{{version}}"',
        'release_tag="v1"',
        "tags.release_tag",
    ),
    spec("tag-prefix-with-space", "TagPolicy(", 'TagPolicy(prefix="my app", ', "tags.prefix"),
    spec(
        "unknown-severity",
        'fail_on=("CRITICAL", "HIGH")',
        'fail_on=("CRITICAL", "SEVERE")',
        "scan.fail_on[1]",
    ),
    spec(
        "unknown-attestation",
        'attestations=("cyclonedx", "vuln", "provenance")',
        'attestations=("cyclonedx", "spdx", "provenance")',
        "sign.attestations[1]",
    ),
    spec(
        "unknown-trigger",
        'CIOptions(default_branch="main")',
        'CIOptions(default_branch="main", triggers=("push", "merge"))',
        "ci.triggers[1]",
    ),
    # many images: per-image release tags, native builders, caches
    spec(
        "image-release-tag-without-version",
        SMOKE,
        SMOKE + ',\n            release_tag="sample-app/v1"',
        "images[0].release_tag",
    ),
    spec(
        "builder-for-a-platform-not-built",
        "ci=CIOptions(",
        'build=BuildPolicy(builders={"linux/s390x": Builder(endpoint="tcp://h:2376")}),\n'
        "    ci=CIOptions(",
        "build.builders['linux/s390x']",
        ("from pipeline.spec import (", "from pipeline.spec import (\n    BuildPolicy, Builder,"),
    ),
    spec(
        "cache-in-the-release-repository",
        "ci=CIOptions(",
        f'build=BuildPolicy(cache=CachePolicy(type="registry", ref="r.example.com/{REPOSITORY}"))'
        ",\n    ci=CIOptions(",
        "build.cache.ref",
        (
            "from pipeline.spec import (",
            "from pipeline.spec import (\n    BuildPolicy, CachePolicy,",
        ),
    ),
    spec(
        "max-parallel-negative",
        "ci=CIOptions(",
        "build=BuildPolicy(max_parallel=-2),\n    ci=CIOptions(",
        "build.max_parallel",
        ("from pipeline.spec import (", "from pipeline.spec import (\n    BuildPolicy,"),
    ),
    # files the spec names
    spec("unknown-target", 'target="runtime"', 'target="runtmie"', "images[0].target"),
    spec(
        "dockerfile-missing",
        'dockerfile="Dockerfile"',
        'dockerfile="Nope.Dockerfile"',
        "images[0].dockerfile",
    ),
    # the spec file itself
    spec("no-spec-variable", "spec = Spec(", "the_spec = Spec(", "`spec`"),
    spec("spec-is-not-a-Spec", "spec = Spec(", "spec = dict(", "`spec`"),
    spec("syntax-error", "spec = Spec(", "spec = Spec((", "release.py:"),
    spec(
        "spec-raises-at-import",
        '"""The release spec',
        'raise RuntimeError("boom")\n"""The release spec',
        "release.py:1",
    ),
    Case("spec-file-missing", "spec", ("--spec", "nope.py", "plan"), "--spec"),
    Case("spec-env-missing", "spec", ("plan",), "PIPELINE_SPEC", env={"PIPELINE_SPEC": "nope.py"}),
    Case(
        "pyproject-not-toml",
        "spec",
        ("plan",),
        "pyproject.toml",
        prepare=_write("pyproject.toml", "[tool.pipeline\nspec = 'release.py'\n"),
    ),
]

CLI_CASES = [
    cli("no-verb", names="VERB"),
    cli("unknown-verb", "shipit", names="shipit"),
    cli("unknown-flag", "release", "--fast", names="--fast"),
    cli("flag-of-another-verb", "tags", "--allow-dirty", names="--allow-dirty"),
    cli("flag-without-its-value", "plan", "--spec", names="--spec"),
    cli("switch-given-a-value", "plan", "--json=yes", names="--json"),
    cli("missing-required-flag", "promote", names="--tag"),
    cli("bad-choice-for-a-flag", "toolchain", "--for", "cloud", names="--for"),
    cli("bad-choice-for-a-positional", "sandbox", "restart", names="action"),
    cli("registry-flag-with-path", "plan", "--registry", "host:5000/path", names="--registry"),
    cli("registry-flag-bad-port", "plan", "--registry", "host:http", names="--registry"),
    cli(
        "build-unknown-platform",
        *("build", "--registry", DEAD_REGISTRY, "--platform", "linux/sparc"),
        names="--platform",
    ),
    cli(
        "build-platform-not-in-spec",
        *("build", "--registry", DEAD_REGISTRY, "--platform", "linux/arm/v7"),
        names="--platform",
    ),
    cli(
        "build-two-platforms",
        *("build", "--registry", DEAD_REGISTRY),
        *("--platform", "linux/amd64", "--platform", "linux/arm64"),
        names="--platform",
    ),
    cli(
        "promote-bad-digest",
        *("promote", "--tag", "production", "--digest", "sha256:xyz"),
        names="--digest",
    ),
    cli(
        "promote-unknown-image", "promote", "--tag", "production", "--image", "web", names="--image"
    ),
]

CONTEXT_CASES = [
    github("event-not-json", "{not json", "GITHUB_EVENT_PATH"),
    github("event-not-an-object", "[1, 2]", "GITHUB_EVENT_PATH"),
    github("event-file-missing", "", "GITHUB_EVENT_PATH", GITHUB_EVENT_PATH="/nonexistent.json"),
    github("event-without-default-branch", json.dumps({"repository": {}}), "default_branch"),
    github(
        "event-pr-without-number",
        json.dumps({"repository": {"default_branch": "main"}, "pull_request": {}}),
        "pull_request.number",
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_REF="refs/pull/7/merge",
    ),
    github(
        "event-bad-commit-time",
        json.dumps(
            {"repository": {"default_branch": "main"}, "head_commit": {"timestamp": "yesterday"}}
        ),
        "head_commit.timestamp",
        GITHUB_SHA=ZERO_SHA,  # not the checkout's commit: the time comes from the payload
    ),
    github("ref-garbage", _DEFAULT_BRANCH, "GITHUB_REF", GITHUB_REF="garbage", GITHUB_REF_TYPE=""),
    github("event-name-missing", _DEFAULT_BRANCH, "GITHUB_EVENT_NAME", GITHUB_EVENT_NAME=""),
    github("sha-garbage", _DEFAULT_BRANCH, "GITHUB_SHA", GITHUB_SHA="HEAD"),
    gitlab(
        "gitlab-merge-request-iid-garbage",
        "CI_MERGE_REQUEST_IID",
        CI_PIPELINE_SOURCE="merge_request_event",
        CI_MERGE_REQUEST_IID="abc",
    ),
    gitlab("gitlab-neither-tag-nor-branch", "CI_COMMIT_BRANCH", CI_PIPELINE_SOURCE="push"),
    Case("dirty-tree-release", "context", ("release",), "--allow-dirty", prepare=_dirty, code=13),
    Case(
        "spec-tag-releases-no-image",
        "context",
        ("plan",),
        "tag v1.0.0: releases no image",
        edits=((SMOKE, SMOKE + ',\n            release_tag="sample-app/v{{version}}"'),),
        prepare=lambda repo: repo.tag("v1.0.0"),
    ),
]

# Inputs that cannot be had, or may not be stood in for outside the sandbox (fail closed), and
# credentials that do not work, each refused before anything is built.
NO_FIXTURES = {"PIPELINE_OFFLINE_FIXTURES": ""}
INPUT_CASES = [
    Case(
        "trivy-db-host-unreachable",
        "inputs",
        ("release", "--registry", DEAD_REGISTRY),
        "PIPELINE_TRIVY_DB_REPOSITORY",
        env={**NO_FIXTURES, "PIPELINE_TRIVY_DB_REPOSITORY": ""},
        code=5,
    ),
    Case(
        "base-image-host-unreachable",
        "inputs",
        ("build", "--registry", DEAD_REGISTRY),
        "ARG BASE_IMAGE",
        env={**NO_FIXTURES, "PIPELINE_BASE_IMAGE": ""},
        code=5,
    ),
    Case(
        "missing-key-file",
        "inputs",
        ("release",),  # the bench registry: refused after its login, before any build
        "COSIGN_KEY: file /nonexistent/release.key does not exist",
        env={"COSIGN_KEY": "/nonexistent/release.key"},
    ),
    Case(
        "wrong-cosign-password",
        "inputs",
        ("sign",),
        "COSIGN_PASSWORD: does not decrypt the signing key in COSIGN_KEY",
        env={"COSIGN_PASSWORD": "not-the-password"},
    ),
    Case(
        "promote-to-a-version-never-released",
        "inputs",
        ("promote", "--tag", "production", "--version", "9.9.9"),
        "version 9.9.9 of sample-app was never published",
        code=9,
    ),
    Case(
        "build-cache-not-a-cache",
        "inputs",
        ("build", "--registry", DEAD_REGISTRY),
        "PIPELINE_BUILD_CACHE",
        env={"PIPELINE_BUILD_CACHE": "s3:bucket"},
    ),
    Case(
        "build-cache-registry-with-a-tag",
        "inputs",
        ("release", "--registry", DEAD_REGISTRY),
        "PIPELINE_BUILD_CACHE",
        env={"PIPELINE_BUILD_CACHE": "registry:r.example.com/cache/app:tag"},
    ),
    Case(
        "stage-without-state",
        "inputs",
        ("scan",),
        "no state file; run the earlier stage (build) first",
        code=12,
    ),
    Case(
        "build-timeout-not-a-number",
        "inputs",
        ("build",),
        "PIPELINE_BUILD_TIMEOUT: '1h' is not a whole number of seconds above 0",
        env={"PIPELINE_BUILD_TIMEOUT": "1h"},
    ),
]

REFERENCE_CASES = [
    reference("uppercase", "127.0.0.1:5000/Bad/Ref:1", "REF"),
    reference("short-digest", "127.0.0.1:5000/bad/ref@sha256:abc", "REF"),
    reference("uppercase-digest", "bad/ref@sha256:" + "AB" * 32, "REF"),
    reference("two-tags", "127.0.0.1:5000/bad/ref:1:2", "REF"),
    reference("empty-tag", "127.0.0.1:5000/bad/ref:", "REF"),
    reference("empty", "", "REF"),
    reference("host-only", "127.0.0.1:5000/", "REF"),
    reference("with-scheme", "https://127.0.0.1:5000/bad/ref:1", "REF"),
    reference("space", "bad ref:1", "REF"),
]

CASES = SPEC_CASES + CLI_CASES + CONTEXT_CASES + REFERENCE_CASES + INPUT_CASES


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return make_repo(tmp_path_factory.mktemp("bad-origin") / "repo", REPOSITORY)


def _github_env(event_path: Path, sha: str) -> dict[str, str]:
    return github_env("push", "refs/heads/main", sha, event_path)


def _pushed(bench: Bench) -> dict[str, list[str]]:
    """Tags of the test repositories, through the registry API (empty when nothing was pushed)."""
    client = bench.client()
    return {repository: tags for repository in REPOSITORIES if (tags := client.tags(repository))}


def test_enough_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES)
    inputs = {(c.args, c.edits, c.prepare, c.github_event, repr(c.env)) for c in CASES}
    assert len(inputs) == len(CASES), "two cases give the same input"
    assert len(CASES) >= 30
    assert {case.category for case in CASES} == {"spec", "cli", "context", "reference", "inputs"}


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(reason=case.known_defect)] if case.known_defect else []
    return pytest.param(case, id=f"{case.category}-{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input_exits_with_its_code_and_one_error_line(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path, case: Case
) -> None:
    repo = clone_repo(origin, tmp_path / "repo")
    for old, new in case.edits:
        repo.edit_spec(old, new)
    if case.edits:
        repo.commit(f"bad input: {case.id}")
    if case.prepare is not None:
        case.prepare(repo)
    env: dict[str, str] = {}
    if case.github_event is not None:
        event = tmp_path / "event.json"
        event.write_text(case.github_event)
        env = _github_env(event, repo.head)
    if case.gitlab:
        env = {"GITLAB_CI": "true", "CI_COMMIT_SHA": repo.head}
    env.update(case.env)

    result = bench.pipeline(*case.args, cwd=repo.path, env=bench.env(**env), timeout=120)

    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == case.code, f"exit {result.returncode}:\n{output}"
    # Only the error line, and the commands echoed before it (`+ docker login` …).
    lines = [line for line in result.stderr.splitlines() if not line.startswith("+ ")]
    assert len(lines) == 1, f"one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert case.names in lines[0], f"{case.names!r} not named in: {lines[0]}"
    for secret in (bench.registry.password, bench.cosign_password):
        assert not secret or secret not in output
    assert _pushed(bench) == {}


def test_a_tag_that_is_not_a_release_warns_and_exits_0(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path
) -> None:
    """A tag push whose tag is not semver is no error: one warning, and the commit tag only."""
    repo = clone_repo(origin, tmp_path / "repo")
    event = tmp_path / "event.json"
    event.write_text(_DEFAULT_BRANCH)
    env = {
        **_github_env(event, repo.head),
        "GITHUB_REF": "refs/tags/release-candidate",
        "GITHUB_REF_NAME": "release-candidate",
        "GITHUB_REF_TYPE": "tag",
    }
    result = bench.pipeline("tags", cwd=repo.path, env=bench.env(**env))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "release-candidate" in lines[0], lines[0]
    assert result.stdout.split() == [f"sha-{repo.head[:7]}"]


def test_allow_dirty_gets_past_the_dirty_check(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path
) -> None:
    """The dirty tree refused above, with --allow-dirty: the release goes on and stops only at
    a registry nobody listens on (no full release here; that is test_release's job)."""
    repo = clone_repo(origin, tmp_path / "repo")
    _dirty(repo)
    result = bench.pipeline(
        "release", "--allow-dirty", "--registry", DEAD_REGISTRY, cwd=repo.path, env=bench.env()
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode not in (0, 2), result.stderr
    assert "uncommitted" not in result.stderr, result.stderr
    assert DEAD_REGISTRY in result.stderr, result.stderr


def test_nothing_was_pushed(bench: Bench) -> None:
    """Last in this module: no case reached the bench registry; not even an untagged manifest."""
    assert _pushed(bench) == {}
    response = bench.client().request("GET", "/v2/_catalog?n=1000", scope="registry:catalog:*")
    catalog = response.json().get("repositories") or []
    assert not [name for name in catalog if name.startswith("bad/")], catalog
