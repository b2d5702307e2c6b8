"""The local git reader against real repositories made with GitPython (spawns git)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from pipeline.adapters.git import read_git_facts
from pipeline.errors import GitError
from tests.support.ci_env import github_env

ROOT = Path(__file__).resolve().parents[2]
COMMIT_DATE = "1714557600 +0200"  # git internal format: 2024-05-01T10:00:00Z


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


_OPEN: list[git.Repo] = []


@pytest.fixture(autouse=True)
def _close_repos() -> Iterator[None]:
    """GitPython keeps `git cat-file` processes per Repo: close every repo a test opened."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _keep(repo: git.Repo) -> git.Repo:
    _OPEN.append(repo)
    return repo


def _repo(path: Path) -> git.Repo:
    repo = _keep(git.Repo.init(path, initial_branch="main"))
    (path / "app.txt").write_text("one\n")
    repo.index.add(["app.txt"])
    repo.index.commit("first", commit_date=COMMIT_DATE, author_date=COMMIT_DATE)
    return repo


def test_branch_head_tags_and_commit_time(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    repo.create_tag("v1.0.0")
    (tmp_path / "app.txt").write_text("two\n")
    repo.index.add(["app.txt"])
    head = repo.index.commit("second", commit_date=COMMIT_DATE, author_date=COMMIT_DATE)
    repo.create_tag("v1.1.0", message="annotated release")  # annotated: peeled to the commit
    repo.create_tag("deployed")
    (tmp_path / "sub").mkdir()

    facts = read_git_facts(tmp_path / "sub")  # found from a sub-folder

    assert facts.sha == head.hexsha
    assert facts.commit_time == "2024-05-01T10:00:00Z"
    assert facts.branch == "main"
    assert facts.head_tags == ("deployed", "v1.1.0")
    assert facts.tags == ("deployed", "v1.0.0", "v1.1.0")
    assert facts.dirty is False
    assert facts.shallow is False
    assert facts.default_branch is None
    assert facts.remote_url is None


def test_dirty_counts_tracked_changes_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (tmp_path / "untracked.txt").write_text("x\n")
    assert read_git_facts(tmp_path).dirty is False
    (tmp_path / "app.txt").write_text("changed\n")
    assert read_git_facts(tmp_path).dirty is True
    repo.index.add(["app.txt"])  # staged counts too
    assert read_git_facts(tmp_path).dirty is True


def test_detached_head(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    repo.git.checkout("--detach", "HEAD")
    facts = read_git_facts(tmp_path)
    assert facts.branch is None
    assert facts.sha == repo.head.commit.hexsha


def test_origin_url_without_credentials_and_default_branch(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    _repo(origin)
    clone = _keep(git.Repo.clone_from(origin.as_uri(), tmp_path / "clone"))
    clone.remotes.origin.set_url("https://user:secret-token@git.example.com/acme/web.git")
    facts = read_git_facts(tmp_path / "clone")
    assert facts.remote_url == "https://git.example.com/acme/web"
    assert facts.default_branch == "main"
    assert "secret-token" not in repr(facts)


def test_shallow_clone_is_reported(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    repo = _repo(origin)
    (origin / "app.txt").write_text("two\n")
    repo.index.add(["app.txt"])
    repo.index.commit("second")
    _keep(git.Repo.clone_from(origin.as_uri(), tmp_path / "shallow", depth=1))
    assert read_git_facts(tmp_path / "shallow").shallow is True


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        read_git_facts(tmp_path)
    assert str(info.value) == (
        f"{tmp_path.resolve()}: not inside a git repository; a release is built from a commit "
        "(git init && git add -A && git commit)"
    )


def test_repository_without_commit(tmp_path: Path) -> None:
    _keep(git.Repo.init(tmp_path))
    with pytest.raises(GitError) as info:
        read_git_facts(tmp_path)
    assert str(info.value) == f"{tmp_path}: the git repository has no commit yet; commit first"


def _pipeline_tags(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "tags", "--spec", "release.py", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _project(folder: Path) -> git.Repo:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text("FROM scratch AS runtime\n")
    (folder / "release.py").write_text(
        "from pipeline.spec import Image, Spec\n"
        "spec = Spec(name='web', images=(Image(name='web', repository='acme/web'),))\n"
    )
    repo = _keep(git.Repo.init(folder, initial_branch="main"))
    repo.index.add(["Dockerfile", "release.py"])
    repo.index.commit("release", commit_date=COMMIT_DATE, author_date=COMMIT_DATE)
    return repo


def _clean_env() -> dict[str, str]:
    return dict.fromkeys(("GITHUB_ACTIONS", "GITLAB_CI", "PIPELINE_SPEC"), "")


def test_pipeline_tags_end_to_end_locally_and_in_ci(tmp_path: Path) -> None:
    """The black-box contract: the same release gives the same tags locally and in CI."""
    repo = _project(tmp_path / "web")
    repo.create_tag("v2.0.0")
    repo.index.commit("backport", commit_date=COMMIT_DATE, author_date=COMMIT_DATE)
    repo.create_tag("v1.4.7")
    sha = repo.head.commit.hexsha
    local = _pipeline_tags(tmp_path / "web", env=_clean_env())
    assert local.returncode == 0, local.stderr
    assert local.stdout.splitlines() == ["1.4.7", "1.4", "1", f"sha-{sha[:7]}"]

    event = tmp_path / "event.json"
    event.write_text('{"repository": {"default_branch": "main"}}')
    github = {**_clean_env(), **github_env("push", "refs/tags/v1.4.7", sha, event)}
    gitlab = {
        **_clean_env(),
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_TAG": "v1.4.7",
        "CI_COMMIT_REF_NAME": "v1.4.7",
        "CI_COMMIT_SHA": sha,
        "CI_DEFAULT_BRANCH": "main",
    }
    for env in (github, gitlab):
        result = _pipeline_tags(tmp_path / "web", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == local.stdout


def test_pipeline_tags_outside_git_fails_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (folder / "release.py").write_text(
        "from pipeline.spec import Image, Spec\n"
        "spec = Spec(name='web', images=(Image(name='web', repository='acme/web'),))\n"
    )
    result = _pipeline_tags(folder, env=_clean_env())
    assert result.returncode == 13  # GitError
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {folder.resolve()}: not inside a git repository; a release is built from a "
        "commit (git init && git add -A && git commit)\n"
    )
