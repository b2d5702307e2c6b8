"""Caches that belong where they should: BuildKit's cache in a reference or a folder of its own
(never the release repository), Trivy's layer analysis kept between releases, one cache per
image and platform."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.engine.workspace import trivy_cache
from tests.support.bench import Bench
from tests.support.release_repo import make_repo, release_tags


def test_the_build_cache_goes_to_its_own_reference_not_the_release_repository(
    bench: Bench, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "tests/cache-registry")
    repo.tag("v1.0.0")
    cache = f"{bench.registry.host}/cache/sample"
    result = bench.pipeline(
        "release", cwd=repo.path, env=bench.env(PIPELINE_BUILD_CACHE=f"registry:{cache}")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"--cache-to type=registry,ref={cache}:sample-app,mode=max" in result.stderr
    client = bench.client()
    assert "sample-app" in client.tags("cache/sample"), "the cache was exported"
    assert set(release_tags(client, "tests/cache-registry")) == {
        "1.0.0", "1.0", "1", "latest", f"sha-{repo.head[:7]}"
    }  # fmt: skip
    assert "buildcache" not in client.tags("tests/cache-registry")
    # The cache is an OCI image index of BuildKit's cache, not an image anyone could pull.
    manifest = client.resolve("cache/sample", "sample-app")
    assert manifest is not None and "manifests" in manifest.document


def test_a_local_cache_folder_and_trivy_s_analysis_per_image_and_platform(
    bench: Bench, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "tests/cache-local")
    repo.tag("v1.0.0")
    folder = tmp_path / "buildkit-cache"
    result = bench.pipeline(
        "release", cwd=repo.path, env=bench.env(PIPELINE_BUILD_CACHE=f"local:{folder}")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    index = json.loads((folder / "sample-app" / "index.json").read_text())
    assert index["manifests"], "BuildKit wrote its cache into the folder"
    assert "buildcache" not in bench.client().tags("tests/cache-local")
    analysis = trivy_cache(bench.db_repository) / "analysis"
    for platform in ("linux-amd64", "linux-arm64"):
        folder_of = analysis / f"sample-app-{platform}"
        assert (folder_of / "fanal" / "fanal.db").is_file(), platform
        assert (folder_of / "db").resolve() == (trivy_cache(bench.db_repository) / "db").resolve()
    assert "--cache-backend fs" in result.stderr
    # The next release finds the folder and imports from it.
    (repo.path / "app" / "NEW.txt").write_text("new\n")
    repo.commit("new content")
    repo.tag("v1.0.1")
    again = bench.pipeline(
        "release", cwd=repo.path, env=bench.env(PIPELINE_BUILD_CACHE=f"local:{folder}")
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"--cache-from type=local,src={folder / 'sample-app'}" in again.stderr
