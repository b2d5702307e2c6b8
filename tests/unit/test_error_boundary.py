"""The CLI's error boundary: anything unexpected is one redacted line naming the operation, exit
code 70, and the redacted traceback in dist/pipeline-debug.log (or on stderr with --debug)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline import cli, operation
from pipeline.errors import InternalError, PublishRefused
from pipeline.secrets import register

SECRET = "hunter2-canary-value"


class _Command:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def add_arguments(self, parser: argparse.ArgumentParser, verb: str) -> None:
        del parser, verb

    def run(self, args: argparse.Namespace) -> int:
        with operation.doing("registry: token for acme/web"):
            raise self.exc


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()  # the project root, where dist/ goes
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    register(SECRET)
    return tmp_path


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    monkeypatch.setattr(cli, "_load", lambda _verb: _Command(exc))


def test_an_unexpected_error_is_one_redacted_line_with_its_own_code(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, KeyError(f"realm (token {SECRET})"))
    assert cli.main(["plan"]) == InternalError.exit_code == 70
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    log = project / "dist" / "pipeline-debug.log"
    assert lines[0] == (
        "error: unexpected failure during registry: token for acme/web: KeyError: "
        f"'realm (token ***)' (traceback in {log}; --debug prints it)"
    )
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError" in text
    assert SECRET not in text


def test_debug_prints_the_redacted_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, ValueError(f"bad body {SECRET}"))
    assert cli.main(["--debug", "plan"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == (
        "error: unexpected failure during registry: token for acme/web: ValueError: bad body ***"
    )
    assert SECRET not in err
    assert not (project / "dist" / "pipeline-debug.log").exists()


def test_an_expected_error_keeps_its_code_and_writes_no_log(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_with(monkeypatch, PublishRefused(f"tag 1.0.0 names another digest ({SECRET})"))
    assert cli.main(["plan"]) == 9
    assert capsys.readouterr().err == "error: tag 1.0.0 names another digest (***)\n"
    assert not (project / "dist").exists()


def test_the_innermost_operation_is_named() -> None:
    with (
        pytest.raises(RuntimeError) as raised,
        operation.doing("the publish step"),
        operation.doing("registry: PUT a tag"),
    ):
        raise RuntimeError("boom")
    assert operation.of(raised.value) == "registry: PUT a tag"
