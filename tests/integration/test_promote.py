"""`promote` moves a floating tag only to a published release: a digest that one of the spec's
version tags names in the registry, read back and verified through that tag."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench import Bench
from tests.support.release_repo import make_repo, release_tags


def test_a_digest_never_published_is_never_promoted(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "promote/unpublished")
    repo.tag("v5.0.0")
    built = bench.pipeline("build", cwd=repo.path)  # pushed by digest, signed by nobody, no tag
    assert built.returncode == 0, built.stderr[-3000:]
    result = bench.pipeline("promote", "--tag", "production", cwd=repo.path)
    assert result.returncode == 9, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was never published" in errors[0], errors
    assert "production" not in release_tags(bench.client(), repo.repository)


def test_a_rollback_names_a_published_version(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "promote/rollback")
    repo.tag("v1.0.0")
    assert bench.pipeline("release", cwd=repo.path).returncode == 0
    (repo.path / "app" / "VERSION.txt").write_text("1.1.0\n")
    repo.commit("1.1.0")
    repo.tag("v1.1.0")
    assert bench.pipeline("release", cwd=repo.path).returncode == 0
    assert bench.pipeline("promote", "--tag", "production", cwd=repo.path).returncode == 0
    tags = release_tags(bench.client(), repo.repository)
    assert tags["production"] == tags["1.1.0"]
    back = bench.pipeline("promote", "--tag", "production", "--version", "1.0.0", cwd=repo.path)
    assert back.returncode == 0, back.stderr[-3000:]
    tags = release_tags(bench.client(), repo.repository)
    assert tags["production"] == tags["1.0.0"] != tags["1.1.0"]
    assert "moved at 1.0.0" in back.stderr
