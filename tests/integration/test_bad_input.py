"""Bad input, black-box through `python -m pipeline`: each case exits 2 with exactly one `error:`
line naming the field or argument at fault, no traceback, and nothing is pushed (checked through
the registry API at the end). The unit tests cover the same rules one function at a time; this is
the end-to-end proof a user sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import Bench
from tests.integration.release_repo import ReleaseRepo, clone_repo, make_repo

REPOSITORY = "bad/input"  # every case's spec names this repository: it must stay empty


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # the command line after `python -m pipeline`
    names: str  # what the error line must mention
    edit: tuple[str, str] | None = None  # (old, new) in the spec, committed
    prepare: Callable[[ReleaseRepo], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


def _spec(old: str, new: str, names: str, *, verb: str = "plan", case_id: str) -> Case:
    return Case(case_id, (verb,), names, edit=(old, new))


def _write(name: str, text: str) -> Callable[[ReleaseRepo], None]:
    def prepare(repo: ReleaseRepo) -> None:
        (repo.path / name).write_text(text)
        repo.commit(f"add {name}")

    return prepare


def _event(payload: str) -> Callable[[ReleaseRepo], None]:
    def prepare(repo: ReleaseRepo) -> None:
        (repo.path.parent / f"{repo.path.name}-event.json").write_text(payload)

    return prepare


def _github(repo_event: str, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_EVENT_PATH": repo_event,
        **extra,
    }


def _dirty(repo: ReleaseRepo) -> None:
    (repo.path / "app" / "server.py").write_text("# an uncommitted change\n")


SPEC_CASES = [
    _spec("platforms=(", "platfroms=(", "platfroms", case_id="typo-in-image-field"),
    _spec("fail_on=(", "fail_onn=(", "fail_onn", case_id="typo-in-scan-field"),
    _spec(
        'platforms=("linux/amd64", "linux/arm64")',
        'platforms="linux/amd64"',
        "platforms",
        case_id="platforms-is-a-string",
    ),
    _spec(
        'platforms=("linux/amd64", "linux/arm64")',
        "platforms=()",
        "platforms",
        case_id="no-platform",
    ),
    _spec(
        'platforms=("linux/amd64", "linux/arm64")',
        'platforms=("linux/amd64", "linux/amd64")',
        "platforms",
        case_id="duplicate-platform",
    ),
    _spec(
        'platforms=("linux/amd64", "linux/arm64")',
        'platforms=("linux/amd64", "linux/arm64/v9")',
        "platforms",
        case_id="unknown-variant",
    ),
    _spec(
        'platforms=("linux/amd64", "linux/arm64")',
        'platforms=("linux/amd64", "amd64")',
        "platforms",
        case_id="platform-without-os",
    ),
    _spec(
        'fail_on=("CRITICAL", "HIGH")',
        'fail_on=("CRITICAL", "SEVERE")',
        "fail_on",
        case_id="unknown-severity",
    ),
    _spec("ignore_unfixed=True", 'ignore_unfixed="yes"', "ignore_unfixed", case_id="bool-as-str"),
    _spec(
        f'repository="{REPOSITORY}"',
        'repository="Bad/Input"',
        "repository",
        case_id="uppercase-repository",
    ),
    _spec(
        f'repository="{REPOSITORY}"',
        'repository="bad//input"',
        "repository",
        case_id="empty-path-component",
    ),
    _spec(
        'name="sample-app",\n            repository',
        'name="",\n            repository',
        "name",
        case_id="empty-image-name",
    ),
    _spec(
        'release_tag="v{{version}}"',
        'release_tag="v{{versoin}}"',
        "release_tag",
        case_id="unknown-template-variable",
    ),
    _spec(
        'smoke_test=("python3", "-c", "import platform; print(platform.machine())")',
        'smoke_test="python3 -V"',
        "smoke_test",
        case_id="smoke-test-is-a-string",
    ),
    _spec(
        'dockerfile="Dockerfile"',
        'dockerfile="Nope.Dockerfile"',
        "dockerfile",
        case_id="dockerfile-missing",
    ),
    _spec('context="."', 'context="../elsewhere"', "context", case_id="context-missing"),
    _spec(
        'ignore_file=".trivyignore.yaml"',
        'ignore_file="missing.yaml"',
        "ignore_file",
        case_id="ignore-file-missing",
    ),
    _spec(
        'host="local"',
        'host="https://registry.example.com/"',
        "host",
        case_id="registry-host-with-scheme",
    ),
    _spec("spec = Spec(", "the_spec = Spec(", "spec", case_id="no-spec-variable"),
    _spec("spec = Spec(", "spec = Spec((", "release.py", case_id="syntax-error"),
    _spec(
        '"""The release spec',
        'raise RuntimeError("boom")\n"""The release spec',
        "release.py",
        case_id="spec-raises",
    ),
    _spec("spec = Spec(", "spec = dict(", "spec", case_id="spec-is-not-a-Spec"),
    Case("spec-file-missing", ("--spec", "nope.py", "plan"), "nope.py"),
]

CLI_CASES = [
    Case("unknown-verb", ("shipit",), "shipit"),
    Case("unknown-flag", ("release", "--fast"), "--fast"),
    Case("promote-without-tag", ("promote",), "--tag"),
    Case("build-unknown-platform", ("build", "--platform", "linux/sparc"), "--platform"),
    Case("build-platform-not-in-spec", ("build", "--platform", "linux/arm/v7"), "--platform"),
    Case(
        "promote-bad-digest",
        ("promote", "--tag", "production", "--digest", "sha256:xyz"),
        "--digest",
    ),
    Case("registry-flag-with-path", ("plan", "--registry", "host:5000/path"), "--registry"),
    Case("registry-flag-bad-port", ("plan", "--registry", "host:http"), "--registry"),
    Case("tags-unknown-flag", ("tags", "--yaml"), "--yaml"),
]

CONTEXT_CASES = [
    Case("event-not-json", ("plan",), "GITHUB_EVENT_PATH", prepare=_event("{not json")),
    Case("event-not-an-object", ("plan",), "GITHUB_EVENT_PATH", prepare=_event("[1, 2]")),
    Case(
        "event-pr-without-number",
        ("plan",),
        "GITHUB_EVENT_PATH",
        prepare=_event(json.dumps({"repository": {"default_branch": "main"}, "pull_request": {}})),
        env={"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge"},
    ),
    Case(
        "event-ref-garbage",
        ("plan",),
        "GITHUB_REF",
        prepare=_event(json.dumps({"repository": {"default_branch": "main"}})),
        env={"GITHUB_REF": "garbage", "GITHUB_REF_TYPE": ""},
    ),
    Case(
        "event-missing-name",
        ("plan",),
        "GITHUB_EVENT_NAME",
        prepare=_event(json.dumps({"repository": {"default_branch": "main"}})),
        env={"GITHUB_EVENT_NAME": ""},
    ),
    Case("dirty-tree-release", ("release",), "--allow-dirty", prepare=_dirty),
]

REF_CASES = [
    Case("verify-uppercase", ("verify", "127.0.0.1:5000/Bad/Ref:1"), "Bad/Ref"),
    Case("verify-short-digest", ("verify", "127.0.0.1:5000/bad/ref@sha256:abc"), "sha256:abc"),
    Case("verify-two-tags", ("verify", "127.0.0.1:5000/bad/ref:1:2"), "bad/ref:1:2"),
    Case("verify-empty", ("verify", ""), "REF"),
    Case("verify-host-only", ("verify", "127.0.0.1:5000/"), "127.0.0.1:5000/"),
    Case("verify-space", ("verify", "bad ref:1"), "bad ref"),
]

CASES = SPEC_CASES + CLI_CASES + CONTEXT_CASES + REF_CASES


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    return make_repo(tmp_path_factory.mktemp("bad-origin") / "repo", REPOSITORY)


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_with_one_line(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path, case: Case
) -> None:
    repo = clone_repo(origin, tmp_path / "repo")
    if case.edit is not None:
        repo.edit_spec(*case.edit)
        repo.commit(f"bad input: {case.id}")
    if case.prepare is not None:
        case.prepare(repo)
    env = dict(case.env)
    if case.id.startswith("event-"):
        event = str(repo.path.parent / f"{repo.path.name}-event.json")
        env = {**_github(event, GITHUB_SHA=repo.head), **env}
    result = bench.pipeline(*case.args, cwd=repo.path, env=bench.env(**env), timeout=300)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, f"exit {result.returncode}: {output[-2000:]}"
    assert len(errors) == 1, output[-2000:]
    assert case.names in errors[0], errors[0]
    assert len(result.stderr.strip().splitlines()) <= 3, (
        f"one error line (a usage line may precede it): {result.stderr}"
    )


def test_a_tag_that_is_not_semver_warns_and_exits_0(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path
) -> None:
    """A tag push whose tag is no release: a warning and the commit tag only, not an error."""
    repo = clone_repo(origin, tmp_path / "repo")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "main"}}))
    env = _github(
        str(event),
        GITHUB_SHA=repo.head,
        GITHUB_REF="refs/tags/release-candidate",
        GITHUB_REF_NAME="release-candidate",
        GITHUB_REF_TYPE="tag",
    )
    result = bench.pipeline("tags", cwd=repo.path, env=bench.env(**env))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "release-candidate" in warnings[0], result.stderr
    assert result.stdout.split() == [f"sha-{repo.head[:7]}"]


def test_allow_dirty_gets_past_the_dirty_check(
    bench: Bench, origin: ReleaseRepo, tmp_path: Path
) -> None:
    """With --allow-dirty the build goes on, and here stops at a registry nobody listens on."""
    repo = clone_repo(origin, tmp_path / "repo")
    _dirty(repo)
    result = bench.pipeline(
        "build", "--allow-dirty", "--registry", "127.0.0.1:9", cwd=repo.path, env=bench.env()
    )
    assert result.returncode not in (0, 2), result.stderr
    assert "uncommitted" not in result.stderr and "127.0.0.1:9" in result.stderr, result.stderr


def test_nothing_was_pushed(bench: Bench) -> None:
    """Runs last in this module: no case reached the registry."""
    assert bench.client().tags(REPOSITORY) == []
    assert bench.client().tags("Bad/Input".lower()) == []
