"""Where the spec is found, from any folder of the repository, and loading a spec's text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import SpecError
from pipeline.specload import find_spec_path, load_spec, search_folders

SPEC = (
    "from pipeline.spec import Image, Spec\n"
    'spec = Spec(name="x", images=(Image(name="x", repository="a/x"),))\n'
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository (a `.git` folder is what marks its root) with nested folders."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "services" / "api" / "src").mkdir(parents=True)
    return root


def test_release_py_found_from_any_folder_up_to_the_git_root(repo: Path) -> None:
    (repo / "release.py").write_text(SPEC)
    for folder in (repo, repo / "services", repo / "services" / "api" / "src"):
        assert find_spec_path(None, cwd=folder, environ={}) == repo / "release.py"


def test_the_nearest_release_py_wins(repo: Path) -> None:
    (repo / "release.py").write_text(SPEC)
    (repo / "services" / "api" / "release.py").write_text(SPEC)
    nested = repo / "services" / "api" / "src"
    assert find_spec_path(None, cwd=nested, environ={}) == repo / "services" / "api" / "release.py"


def test_pyproject_setting_comes_before_release_py(repo: Path) -> None:
    (repo / "services" / "api" / "release.py").write_text(SPEC)
    (repo / "deploy").mkdir()
    (repo / "deploy" / "spec.py").write_text(SPEC)
    (repo / "pyproject.toml").write_text('[tool.pipeline]\nspec = "deploy/spec.py"\n')
    # A sub-project's pyproject.toml without the setting does not hide the root's.
    (repo / "services" / "api" / "pyproject.toml").write_text('[project]\nname = "api"\n')
    found = find_spec_path(None, cwd=repo / "services" / "api" / "src", environ={})
    assert found == repo / "deploy" / "spec.py"


def test_explicit_and_environment_are_relative_to_the_working_directory(repo: Path) -> None:
    (repo / "services" / "s.py").write_text(SPEC)
    (repo / "release.py").write_text(SPEC)
    services = repo / "services"
    assert find_spec_path("s.py", cwd=services, environ={}) == services / "s.py"
    assert find_spec_path(None, cwd=services, environ={"PIPELINE_SPEC": "s.py"}) == (
        services / "s.py"
    )
    with pytest.raises(SpecError, match=r"^--spec: spec file .*missing\.py does not exist"):
        find_spec_path("missing.py", cwd=services, environ={})


def test_the_search_stops_at_the_git_root(tmp_path: Path, repo: Path) -> None:
    (tmp_path / "release.py").write_text(SPEC)  # above the repository: never found
    assert search_folders(repo / "services") == (repo / "services", repo)
    with pytest.raises(
        SpecError, match=r"^no spec: no release\.py .* up to .*repo; .*pipeline init"
    ):
        find_spec_path(None, cwd=repo / "services", environ={})


def test_outside_git_only_the_working_directory(tmp_path: Path) -> None:
    folder = tmp_path / "plain" / "sub"
    folder.mkdir(parents=True)
    (tmp_path / "plain" / "release.py").write_text(SPEC)
    assert search_folders(folder) == (folder,)
    with pytest.raises(SpecError, match="no spec"):
        find_spec_path(None, cwd=folder, environ={})


def test_load_spec_from_text_before_the_file_exists(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "release.py"
    loaded = load_spec(path, SPEC)
    assert loaded.spec.name == "x" and loaded.base_dir == tmp_path and not path.exists()
    with pytest.raises(SpecError, match=r"release\.py:1: syntax error"):
        load_spec(path, "spec = (\n")
