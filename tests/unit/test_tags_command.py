"""`pipeline tags`: plain and JSON output, with the git reader replaced by fixed facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.context import GitFacts
from pipeline.engine import loading

SHA = "0123456789abcdef0123456789abcdef01234567"
SPEC = """\
from pipeline.spec import Image, Spec
spec = Spec(
    name="web",
    url="https://example.com/web",
    images=(
        Image(name="web", repository="acme/web", description="Web", licenses="MIT"),
        Image(name="api", repository="acme/api"),
    ),
)
"""


@pytest.fixture
def spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "release.py"
    path.write_text(SPEC)
    facts = GitFacts(
        sha=SHA,
        commit_time="2024-05-01T10:00:00Z",
        branch="main",
        head_tags=("v1.4.7",),
        tags=("v1.4.6", "v1.4.7", "v2.0.0"),
    )
    monkeypatch.setattr(loading, "read_git_facts", lambda _path: facts)
    for name in ("GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_plain_output_is_one_tag_per_line(
    spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["tags", "--spec", str(spec_file)]) == 0
    out, err = capsys.readouterr()
    assert out == "1.4.7\n1.4\n1\nsha-0123456\n"
    assert err == ""


def test_spec_before_the_verb_works_too(
    spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--spec", str(spec_file), "tags"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "1.4.7"


def test_json_output(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tags", "--spec", str(spec_file), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == "1.4.7"
    assert document["tags"] == ["1.4.7", "1.4", "1", "sha-0123456"]
    assert document["immutable"] == ["1.4.7", "sha-0123456"]
    assert document["publish"] is True
    assert document["warnings"] == []
    assert set(document["labels"]) == {"web", "api"}
    assert document["labels"]["web"] == {
        "org.opencontainers.image.created": "2024-05-01T10:00:00Z",
        "org.opencontainers.image.description": "Web",
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.source": "https://example.com/web",
        "org.opencontainers.image.title": "web",
        "org.opencontainers.image.url": "https://example.com/web",
        "org.opencontainers.image.version": "1.4.7",
    }
    assert document["labels"]["api"]["org.opencontainers.image.title"] == "api"
    assert "org.opencontainers.image.description" not in document["labels"]["api"]
    context = document["context"]
    assert (context["system"], context["event"], context["tag"]) == ("local", "tag", "v1.4.7")
    assert context["releases"] == ["1.4.6", "1.4.7", "2.0.0"]


def test_pull_request_in_gitlab(
    spec_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "12",
        "CI_COMMIT_SHA": SHA,
        "CI_DEFAULT_BRANCH": "main",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["tags", "--spec", str(spec_file), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["tags"] == ["pr-12", "sha-0123456"]
    assert document["publish"] is False
    assert document["version"] is None
    assert "org.opencontainers.image.version" not in document["labels"]["web"]


def test_warning_goes_to_stderr(
    spec_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = GitFacts(sha=SHA, commit_time=None, branch=None)
    monkeypatch.setattr(loading, "read_git_facts", lambda _path: facts)
    assert cli.main(["tags", "--spec", str(spec_file)]) == 0
    out, err = capsys.readouterr()
    assert out == "sha-0123456\n"
    assert err == "warning: HEAD (0123456) is detached and has no release tag: commit tag only\n"


def test_bad_context_exits_2(
    spec_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_SHA", "nope")
    assert cli.main(["tags", "--spec", str(spec_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: GITHUB_SHA: 'nope' is not a commit sha (40 lowercase hex)\n"


def test_missing_spec_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.py"
    assert cli.main(["tags", "--spec", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: --spec: spec file {missing} does not exist\n"
