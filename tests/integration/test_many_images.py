"""Many images in one release, on the bench: four images (one built FROM another of the spec)
released side by side, change detection between releases, an atomic set, per-image release tags
and the progress people read. Every claim is checked through the registry API or cosign.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import Bench
from tests.support.monorepo import IMAGES, make_monorepo
from tests.support.release_repo import ReleaseRepo, make_repo, release_tags

PREFIX = "tests/mono"
RELEASE = {"1.0.0", "1.0", "1", "latest"}


def _release(bench: Bench, repo: ReleaseRepo, **env: str) -> subprocess.CompletedProcess[str]:
    return bench.pipeline("release", cwd=repo.path, env=bench.env(**env))


def _images(repo: ReleaseRepo) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in repo.report()["images"]}


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.fixture(scope="module")
def mono(
    bench: Bench, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReleaseRepo, subprocess.CompletedProcess[str]]:
    repo = make_monorepo(tmp_path_factory.mktemp("mono"), PREFIX)
    repo.tag("v1.0.0")
    return repo, _release(bench, repo)


def test_four_images_are_released_side_by_side_api_after_base(
    bench: Bench, mono: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, result = mono
    assert result.returncode == 0, result.stderr[-4000:]
    client = bench.client()
    images = _images(repo)
    assert set(images) == set(IMAGES)
    for name in IMAGES:
        tags = release_tags(client, f"{PREFIX}/{name}")
        assert set(tags) == RELEASE | {f"sha-{repo.head[:7]}"}, name
        assert set(tags.values()) == {images[name]["index_digest"]}, name
        assert images[name]["release"] == "built"
        assert (
            bench.verify_signature(f"{bench.registry.host}/{PREFIX}/{name}:1.0.0").returncode == 0
        )
    # api was built FROM base by digest: its provenance names base's index digest.
    base_digest = images["base"]["index_digest"]
    assert [f"{PREFIX}/base", base_digest] in images["api"]["base_images"]
    assert images["api"]["needs"] == ["base"]
    # The graph's order, and images at the same time: api's build after base's, others alongside.
    spans = {name: image["spans"] for name, image in images.items()}
    assert spans["api"]["build"][0] >= spans["base"]["build"][1] - 0.05
    assert any(
        _overlap(spans[a]["build"], spans[b]["build"]) for a in IMAGES for b in IMAGES if a < b
    ), "no two builds ran at the same time"
    assert any(
        _overlap(spans[a][x], spans[b][y])
        for a in IMAGES
        for b in IMAGES
        if a != b
        for x in ("build", "scan", "sign")
        for y in ("build", "scan", "sign")
        if x != y
    ), "no image scanned or signed while another still built"
    report = repo.report()
    assert 0 < report["critical_path_seconds"] <= report["run"]["seconds"]


def test_the_summary_and_the_table_are_per_image(
    mono: tuple[ReleaseRepo, subprocess.CompletedProcess[str]],
) -> None:
    repo, result = mono
    summary = (repo.path / "dist" / "summary.md").read_text()
    for name in IMAGES:
        assert f"`{PREFIX}/{name}`" in summary or f"/{PREFIX}/{name}`" in summary
        assert f"│ {name} " in result.stderr  # a row of the release table
    assert summary.count("| built |") == 4


def test_ci_logs_show_condensed_buildkit_step_lines(
    mono: tuple[ReleaseRepo, subprocess.CompletedProcess[str]],
) -> None:
    _, result = mono
    lines = result.stderr.splitlines()
    # One line per finished step, named by image and platform, as the steps finish.
    assert any(
        line.startswith("  base linux/arm64: build: [linux/arm64 runtime") for line in lines
    ), result.stderr[-3000:]
    assert any(line.startswith("  base linux/amd64: test: [test 5/5] RUN") for line in lines)
    assert any(line.startswith("  api linux/amd64: build: ") for line in lines)
    assert not any("#1 [internal]" in line for line in lines), "raw BuildKit output leaked"


def test_a_second_release_rebuilds_only_the_changed_image(
    bench: Bench, mono: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = mono
    client = bench.client()
    before = {name: release_tags(client, f"{PREFIX}/{name}")["1.0.0"] for name in IMAGES}
    (repo.path / "web" / "app" / "CHANGED.txt").write_text("only web changes\n")
    repo.commit("web changes")
    repo.tag("v1.1.0")
    result = _release(bench, repo)
    assert result.returncode == 0, result.stderr[-4000:]
    images = _images(repo)
    assert images["web"]["release"] == "built"
    for name in ("base", "api", "worker"):
        assert images[name]["release"] == "unchanged since 1.0.0", name
        assert "build" not in images[name]["spans"] or images[name]["timings"]["build"] < 5
    assert result.stderr.count("buildx build ") >= 1
    assert "web: buildx build" in result.stderr
    for name in ("base", "api", "worker"):
        assert f"{name}: buildx build" not in result.stderr, name
    # Through the registry: the unchanged images' 1.1.0 names their 1.0.0 digest, web's is new.
    for name in IMAGES:
        tags = release_tags(client, f"{PREFIX}/{name}")
        assert {"1.1.0", "1.1", "1", "latest", f"sha-{repo.head[:7]}"} <= set(tags)
        assert tags["latest"] == tags["1.1.0"]
        if name == "web":
            assert tags["1.1.0"] != before[name]
        else:
            assert tags["1.1.0"] == before[name] == tags["1.0.0"], name
    # The reused digest is signed as 1.1.0 now, and still as 1.0.0.
    ref = f"{bench.registry.host}/{PREFIX}/api:1.1.0"
    verified = bench.verify_signature(ref)
    assert verified.returncode == 0, verified.stderr
    versions = {
        p["optional"].get("org.opencontainers.image.version") for p in json.loads(verified.stdout)
    }
    assert versions == {"1.0.0", "1.1.0"}
    for tag in ("1.0.0", "1.1.0"):
        check = bench.pipeline("verify", f"{bench.registry.host}/{PREFIX}/api:{tag}", cwd=repo.path)
        assert check.returncode == 0, check.stderr[-2000:]
    assert "unchanged since 1.0.0" in (repo.path / "dist" / "summary.md").read_text()


def test_an_image_with_its_own_release_tag_is_released_alone(
    bench: Bench, mono: tuple[ReleaseRepo, subprocess.CompletedProcess[str]]
) -> None:
    repo, _ = mono
    client = bench.client()
    before = {name: release_tags(client, f"{PREFIX}/{name}") for name in IMAGES}
    repo.edit_spec("# WORKER_RELEASE_TAG", 'release_tag="worker/v{{version}}",')
    (repo.path / "worker" / "app" / "CHANGED.txt").write_text("worker 2\n")
    repo.commit("worker has its own releases")
    repo.tag("worker/v2.0.0")
    result = _release(bench, repo)
    assert result.returncode == 0, result.stderr[-4000:]
    assert [i["name"] for i in repo.report()["images"]] == ["worker"]
    worker = release_tags(client, f"{PREFIX}/worker")
    assert {"2.0.0", "2.0", "2", "latest"} <= set(worker)
    assert worker["latest"] == worker["2.0.0"] != before["worker"]["1.1.0"]
    for name in ("base", "api", "web"):
        assert release_tags(client, f"{PREFIX}/{name}") == before[name], name
    # Its floating tags follow its own releases: worker/v1.5.0 after 2.0.0 moves no `latest`.
    (repo.path / "worker" / "app" / "CHANGED.txt").write_text("worker 1.5\n")
    repo.commit("worker 1.5")
    repo.tag("worker/v1.5.0")
    result = _release(bench, repo)
    assert result.returncode == 0, result.stderr[-4000:]
    after = release_tags(client, f"{PREFIX}/worker")
    assert after["latest"] == worker["2.0.0"] and after["1.5.0"] != worker["2.0.0"]
    # The spec's own release tag no longer releases worker.
    (repo.path / "web" / "app" / "CHANGED.txt").write_text("web 1.2\n")
    repo.commit("web 1.2")
    repo.tag("v1.2.0")
    result = _release(bench, repo)
    assert result.returncode == 0, result.stderr[-4000:]
    assert {i["name"] for i in repo.report()["images"]} == {"base", "api", "web"}
    assert "1.2.0" not in release_tags(client, f"{PREFIX}/worker")


def test_one_failing_image_leaves_no_tag_in_any_repository(bench: Bench, tmp_path: Path) -> None:
    prefix = "tests/mono-fail"
    repo = make_monorepo(tmp_path / "repo", prefix)
    dockerfile = repo.path / "worker" / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace(
            "WORKDIR /srv\n", 'WORKDIR /srv\nRUN ["python3", "-c", "raise SystemExit(3)"]\n'
        )
    )
    repo.commit("worker cannot build")
    repo.tag("v1.0.0")
    result = _release(bench, repo)
    assert result.returncode == 4, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: docker buildx build failed")
    client = bench.client()
    for name in IMAGES:
        assert release_tags(client, f"{prefix}/{name}") == {}, name
    report = repo.report()
    assert report["status"] == "failed" and report["run"]["failed_step"] == "build"
    worker = next(i for i in report["images"] if i["name"] == "worker")
    assert worker["error"].startswith("build: docker buildx build failed")
    assert worker["release"].startswith("failed")
    assert all(not image["tags"] for image in report["images"])


def test_a_failing_unit_test_is_named_in_the_error(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "tests/failing-unit-test")
    test_file = repo.path / "tests" / "test_server.py"
    text = test_file.read_text()
    marker = "    def test_health(self) -> None:\n"
    assert marker in text
    test_file.write_text(
        text.replace(marker, marker + "        self.assertEqual(1, 2, 'planted failure')\n")
    )
    repo.commit("a failing test")
    repo.tag("v1.0.0")
    result = _release(bench, repo)
    assert result.returncode == 4, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "error: the image's tests failed (stage 'test'): "
        "tests.test_server.ServerTest.test_health failed"
    ), last
    # The failing test's own output is shown above the error line, not a cache importer's.
    assert "  | AssertionError: 1 != 2 : planted failure" in result.stderr
    assert "importing cache manifest" not in last
    assert release_tags(bench.client(), "tests/failing-unit-test") == {}
