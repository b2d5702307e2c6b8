"""Many images, without tools: which images a tag releases, the build graph, the scheduler, the
inputs digest of change detection, the critical path, BuildKit's progress and failures."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from pipeline import buildlog, imagegraph, ui
from pipeline.context import GitFacts, detect
from pipeline.engine import changes, schedule
from pipeline.engine.report import critical_path
from pipeline.errors import SpecError
from pipeline.spec import BuildPolicy, Image, Spec, TagPolicy
from pipeline.state import ImageState, State
from pipeline.tags import image_policy, release_set

SHA = "0123456789abcdef0123456789abcdef01234567"
DATA = Path(__file__).parent / "data"
API = Image(name="api", repository="acme/api", release_tag="api/v{{version}}")
WEB = Image(name="web", repository="acme/web")
JOB = Image(name="job", repository="acme/job", tags=TagPolicy(prefix="job-"))
SPEC = Spec(name="mono", images=(API, WEB, JOB))


def local(*head: str, tags: tuple[str, ...] = ()) -> object:
    facts = GitFacts(sha=SHA, commit_time="2024-05-01T10:00:00Z", branch="main",
                     head_tags=head, tags=tags + head)  # fmt: skip
    patterns = tuple(i.release_tag for i in SPEC.images if i.release_tag)
    return detect({}, read_event=str, git=facts, image_release_tags=patterns)


def names(ts: object) -> list[str]:
    return [t.name for t in ts.tags]  # type: ignore[attr-defined]


def test_an_image_tag_releases_that_image_alone() -> None:
    release = release_set(SPEC, local("api/v1.2.0"))  # type: ignore[arg-type]
    assert release.names == ("api",) and release.left_out == ("web", "job")
    assert release.tagset.version == "1.2.0"
    assert names(release.tagsets["api"]) == ["1.2.0", "1.2", "1", "latest", "sha-0123456"]


def test_the_spec_tag_releases_the_images_without_one_with_their_own_policies() -> None:
    release = release_set(SPEC, local("v2.0.0", tags=("api/v9.0.0",)))  # type: ignore[arg-type]
    assert release.names == ("web", "job")
    assert names(release.tagsets["web"]) == ["2.0.0", "2.0", "2", "latest", "sha-0123456"]
    assert names(release.tagsets["job"])[0] == "job-2.0.0"


def test_floating_tags_rank_among_the_image_s_own_releases() -> None:
    # api has released 3.0.0 under its own tags; the spec's v5.0.0 does not count for it.
    ctx = local("api/v2.5.0", tags=("api/v3.0.0", "v5.0.0"))
    tags = names(release_set(SPEC, ctx).tagsets["api"])  # type: ignore[arg-type]
    assert tags == ["2.5.0", "2.5", "2", "sha-0123456"]  # no latest: 3.0.0 is higher


def test_branches_and_non_release_tags_take_every_image() -> None:
    assert release_set(SPEC, local()).names == ("api", "web", "job")  # type: ignore[arg-type]
    github = detect(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/tags/nightly",
            "GITHUB_SHA": SHA,
            "GITHUB_EVENT_PATH": "e.json",
        },
        read_event=lambda _: '{"repository": {"default_branch": "main"}}',
        git=None,
    )
    assert release_set(SPEC, github).names == ("api", "web", "job")


def test_a_spec_tag_with_every_image_on_its_own_tags_is_refused() -> None:
    spec = Spec(name="mono", images=(API,))
    with pytest.raises(SpecError, match=r"tag v1\.0\.0: releases no image"):
        release_set(spec, local("v1.0.0"))  # type: ignore[arg-type]


def test_github_finds_a_per_image_tag_from_its_ref() -> None:
    ctx = detect(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/tags/api/v1.0.0",
            "GITHUB_REF_NAME": "api/v1.0.0",
            "GITHUB_SHA": SHA,
            "GITHUB_EVENT_PATH": "e.json",
        },
        read_event=lambda _: '{"repository": {"default_branch": "main"}}',
        git=None,
    )
    assert ctx.tag == "api/v1.0.0" and release_set(SPEC, ctx).names == ("api",)


def test_gitlab_finds_a_per_image_tag() -> None:
    ctx = detect(
        {
            "GITLAB_CI": "true",
            "CI_COMMIT_SHA": SHA,
            "CI_COMMIT_TAG": "api/v1.0.1",
            "CI_PIPELINE_SOURCE": "push",
        },
        read_event=str,
        git=None,
    )
    release = release_set(SPEC, ctx)
    assert release.names == ("api",) and release.tagset.version == "1.0.1"


def test_image_policy_keeps_the_spec_rules_with_its_own_release_tag() -> None:
    assert image_policy(SPEC, API).release_tag == "api/v{{version}}"
    assert image_policy(SPEC, JOB).prefix == "job-"
    assert image_policy(SPEC, WEB) is SPEC.tags


# --- the build graph -----------------------------------------------------------------------


def test_a_pinned_dockerfile_names_the_spec_image_by_digest_and_keeps_the_rest() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG REG=reg.example.com\n"
        "FROM --platform=$BUILDPLATFORM ${REG}/acme/base:1 \\\n"
        "    AS one\n"
        "RUN true\n"
        "FROM debian:12\n"
        "FROM acme/base\n"
    )
    digest = "reg.example.com/acme/base@sha256:" + "a" * 64
    pins = {"reg.example.com/acme/base:1": digest, "acme/base": digest}
    pinned = imagegraph.pin_dockerfile(text, {}, pins).splitlines()
    assert pinned == [
        "# syntax=docker/dockerfile:1",
        "ARG REG=reg.example.com",
        f"FROM --platform=$BUILDPLATFORM {digest} AS one",
        "",
        "RUN true",
        "FROM debian:12",
        f"FROM {digest}",
    ]


def test_a_from_naming_a_spec_repository_with_or_without_host() -> None:
    base = Image(name="base", repository="acme/base")
    images = (base, WEB)
    text = (
        "ARG REG=reg.example.com\n"
        "FROM ${REG}/acme/base:1 AS one\n"
        "FROM acme/base AS two\n"
        "FROM other.example.com/acme/base AS three\n"
        "FROM debian:12\n"
    )
    found = imagegraph.spec_bases(text, {}, images, {"reg.example.com"}, own="web")
    assert [(b.reference, b.image) for b in found] == [
        ("reg.example.com/acme/base:1", "base"),
        ("acme/base", "base"),
    ]
    assert imagegraph.spec_bases("FROM acme/web\n", {}, images, set(), own="web") == []


def test_build_order_follows_the_graph_and_refuses_a_cycle() -> None:
    order = imagegraph.build_order(["api", "base", "web"], {"api": ["base"], "web": ["api"]})
    assert order == ["base", "api", "web"]
    with pytest.raises(SpecError, match="api -> base -> api"):
        imagegraph.build_order(["api", "base"], {"api": ["base"], "base": ["api"]})


# --- the scheduler ---------------------------------------------------------------------------


def test_images_run_side_by_side_bounded_and_in_graph_order() -> None:
    lock = threading.Lock()
    running: list[str] = []
    peak = [0]
    log: list[tuple[str, str, str]] = []

    def step(kind: str) -> schedule.ImageStep:
        def run(name: str) -> None:
            with lock:
                running.append(name)
                peak[0] = max(peak[0], len(running))
                log.append(("start", kind, name))
            time.sleep(0.05)
            with lock:
                running.remove(name)
                log.append(("end", kind, name))

        return run

    done: list[tuple[str, str]] = []
    schedule.run(
        ["base", "api", "web", "worker"],
        ("build", "scan", "sign"),
        {"build": step("build"), "scan": step("scan"), "sign": step("sign")},
        needs={"api": ["base"]},
        parallel=2,
        on_done=lambda unit, _s, _e: done.append((unit.image, unit.step)),
        on_failed=lambda _u, _e: None,
    )
    assert peak[0] == 2
    assert len(done) == 12
    assert log.index(("end", "build", "base")) < log.index(("start", "build", "api"))
    for name in ("base", "api", "web", "worker"):
        chain = [k for e, k, n in log if n == name and e == "start"]
        assert chain == ["build", "scan", "sign"]


def test_one_failure_stops_what_has_not_started() -> None:
    started: list[str] = []

    def build(name: str) -> None:
        started.append(name)
        if name == "a":
            raise SpecError("a broke")

    failed: list[str] = []
    with pytest.raises(SpecError, match="a broke"):
        schedule.run(
            ["a", "b", "c"],
            ("build",),
            {"build": build},
            needs={"b": ["a"], "c": ["a"]},
            parallel=1,
            on_done=lambda *_: None,
            on_failed=lambda unit, _e: failed.append(unit.image),
        )
    assert started == ["a"] and failed == ["a"]


def test_workers_never_exceed_the_cores() -> None:
    assert schedule.workers(Spec(name="x", images=(WEB,), build=BuildPolicy()), cores=2) == 2
    spec = Spec(name="x", images=(WEB,), build=BuildPolicy(max_parallel=8))
    assert schedule.workers(spec, cores=2) == 2
    spec = Spec(name="x", images=(WEB,), build=BuildPolicy(max_parallel=1))
    assert schedule.workers(spec, cores=8) == 1


def test_the_critical_path_follows_the_longest_chain() -> None:
    state = State(commit=SHA, version="1.0.0", context={})
    state.timings = {"setup": 1.0, "preflight": 0.5, "publish": 0.5, "build": 9.0}
    state.images = {
        "base": ImageState("base", "r/base", timings={"build": 4, "scan": 1, "sign": 2}),
        "api": ImageState(
            "api", "r/api", needs=["base"], timings={"build": 2, "scan": 1, "sign": 2}
        ),
        "web": ImageState("web", "r/web", timings={"build": 6, "scan": 1, "sign": 1}),
    }
    assert critical_path(state) == 2.0 + 4 + 2 + 1 + 2  # base's build, then api's chain


# --- change detection ---------------------------------------------------------------------


def _inputs(**change: object) -> changes.Inputs:
    facts: dict[str, object] = {
        "context_digest": "sha256:" + "1" * 64,
        "dockerfile": b"FROM x\n",
        "build_args": {"A": "1"},
        "bases": [["reg/base@sha256:" + "2" * 64, "sha256:" + "2" * 64]],
        "platforms": ("linux/amd64", "linux/arm64"),
        "source_url": "https://example.com/acme/web",
    }
    facts.update(change)
    return changes.fingerprint(SPEC, WEB, **facts)  # type: ignore[arg-type]


def test_the_inputs_digest_changes_with_every_input_and_nothing_else() -> None:
    same = _inputs().digest
    assert _inputs(platforms=("linux/arm64", "linux/amd64")).digest == same
    for change in (
        {"context_digest": "sha256:" + "3" * 64},
        {"dockerfile": b"FROM y\n"},
        {"build_args": {"A": "2"}},
        {"bases": [["reg/base", "sha256:" + "4" * 64]]},
        {"platforms": ("linux/amd64",)},
    ):
        assert _inputs(**change).digest != same, change
    unpinned = _inputs(bases=[["debian:12", None]])
    assert not unpinned.pinned and unpinned.unpinned == ("debian:12",)


def test_released_versions_newest_first_under_the_policy() -> None:
    tags = ["1.0.0", "1.1.0", "1.1", "latest", "sha-0123456", "0.9.0", "v2.0.0", "job-3.0.0"]
    assert changes.released_versions(tags, TagPolicy()) == ["1.1.0", "1.0.0", "0.9.0"]
    assert changes.released_versions(tags, TagPolicy(prefix="job-")) == ["3.0.0"]


def test_signed_as_finds_a_re_run() -> None:
    payloads = [{"optional": {changes.REVISION: SHA, changes.VERSION: "1.2.0"}}]
    assert changes.signed_as(payloads, "1.2.0", SHA)
    assert not changes.signed_as(payloads, "1.3.0", SHA)


# --- BuildKit's progress ------------------------------------------------------------------


def test_a_recorded_test_failure_names_the_test_and_keeps_its_output() -> None:
    found = buildlog.failure((DATA / "buildx-test-failure.log").read_text())
    assert found is not None
    assert found.test == "tests.test_server.ServerTest.test_health"
    assert found.step.startswith("[test 5/5] RUN")
    assert found.output[-1] == "FAILED (failures=1)"
    assert "AssertionError: 1 != 2 : planted failure" in found.output
    assert found.error.startswith("failed to solve: process")
    assert "importing cache manifest" not in found.headline()


@pytest.mark.parametrize(
    ("lines", "test"),
    [
        (["FAIL: test_x (pkg.mod.Case)"], "pkg.mod.Case.test_x"),
        (["FAILED tests/test_a.py::test_b - assert 0"], "tests/test_a.py::test_b"),
        (["--- FAIL: TestParse (0.00s)"], "TestParse"),
        (["  ● parser > rejects bad input"], "parser > rejects bad input"),
        (["not ok 3 - adds numbers"], "adds numbers"),
        (["all good"], None),
    ],
)
def test_failing_tests_of_several_runners(lines: list[str], test: str | None) -> None:
    assert buildlog.failing_test(lines) == test


def test_condensed_lines_one_per_finished_step() -> None:
    progress = buildlog.Progress()
    out = []
    for line in (DATA / "buildx-test-failure.log").read_text().splitlines():
        found = progress.feed(line)
        if found and (text := buildlog.condensed(*found)):
            out.append(text)
    assert out[1] == "[test 2/5] WORKDIR /src (cached)"
    assert out[3] == "[test 4/5] COPY tests/ tests/ (0.1s)"
    assert not any("[internal]" in line for line in out)
    assert out[-1].endswith("did not complete successfully: exit code: 1")


def test_the_terminal_board_has_a_line_per_image_and_platform_with_its_time() -> None:
    board = ui.Board()
    board.status(("api", "linux/amd64"), "build: [runtime 2/3] COPY app/ app/")
    board.status(("api", "linux/arm64"), "build: [linux/arm64 runtime 1/3] FROM base")
    board.finish(("web", ""), "web: signed")
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(board.render())
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:2] == ["api", "linux/amd64"] and "COPY app/ app/" in lines[0]
    assert lines[1].split()[:2] == ["api", "linux/arm64"]
    assert lines[2].split()[0] == "web" and "✓" in lines[2]
    assert all("s " in line for line in lines)  # the elapsed time, in seconds
