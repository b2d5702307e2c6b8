"""Preflight checks, table-driven, on Dockerfile and .dockerignore text (no files, no tools)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pipeline.preflight import (
    Finding,
    check_dockerfile,
    check_dockerignore,
    external_bases,
    run_preflight,
    secret_name,
)
from pipeline.spec import Level, PreflightPolicy
from pipeline.specload import load_spec

ROOT = Path(__file__).resolve().parents[2]
LEVELS: Mapping[str, Level] = PreflightPolicy().levels
ALL_ERRORS: Mapping[str, Level] = dict.fromkeys(LEVELS, "error")

GOOD = """\
ARG BASE=python:3.12-slim@sha256:{d}
FROM ${{BASE}} AS build
RUN true
FROM ${{BASE}} AS runtime
COPY --from=build /x /x
USER 10001:10001
HEALTHCHECK CMD ["true"]
""".format(d="a" * 64)


def _checks(
    text: str,
    *,
    target: str | None = None,
    args: Mapping[str, str] | None = None,
    levels: Mapping[str, Level] = ALL_ERRORS,
) -> list[Finding]:
    return check_dockerfile(
        text,
        dockerfile="Dockerfile",
        image="web",
        target=target,
        build_args=args or {},
        levels=levels,
    )


def _ids(findings: list[Finding]) -> list[str]:
    return sorted(f.check for f in findings)


def test_a_good_dockerfile_passes_every_check() -> None:
    assert _checks(GOOD) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM python:3.12-slim\nUSER app\nHEALTHCHECK CMD true\n", ["base_pinned_by_digest"]),
        (
            "FROM python\nUSER app\nHEALTHCHECK CMD true\n",
            ["base_pinned_by_digest", "no_latest_base"],
        ),
        (
            "FROM python:latest\nUSER app\nHEALTHCHECK CMD true\n",
            ["base_pinned_by_digest", "no_latest_base"],
        ),
        ("FROM python@sha256:" + "b" * 64 + "\nUSER app\nHEALTHCHECK CMD true\n", []),
        ("FROM scratch\nUSER 1\nHEALTHCHECK CMD true\n", []),
        ("FROM scratch\nHEALTHCHECK CMD true\n", ["non_root_user"]),
        ("FROM scratch\nUSER root\nHEALTHCHECK CMD true\n", ["non_root_user"]),
        ("FROM scratch\nUSER 0:0\nHEALTHCHECK CMD true\n", ["non_root_user"]),
        ("FROM scratch\nUSER app\nUSER root\nHEALTHCHECK CMD true\n", ["non_root_user"]),
        ("FROM scratch\nUSER root\nUSER 1000\nHEALTHCHECK CMD true\n", []),
        ("FROM scratch\nUSER 1\n", ["healthcheck"]),
        ("FROM scratch\nUSER 1\nHEALTHCHECK NONE\n", ["healthcheck"]),
        ("FROM scratch\nARG API_TOKEN=abc\nUSER 1\nHEALTHCHECK CMD true\n", ["no_secret_args"]),
        ("FROM scratch\nARG API_TOKEN\nUSER 1\nHEALTHCHECK CMD true\n", []),
        (
            "FROM scratch\nENV DB_PASSWORD=hunter2\nUSER 1\nHEALTHCHECK CMD true\n",
            ["no_secret_args"],
        ),
        (
            "FROM scratch\nENV DB_PASSWORD hunter2\nUSER 1\nHEALTHCHECK CMD true\n",
            ["no_secret_args"],
        ),
        ("FROM scratch\nENV KEYBOARD_LAYOUT=us\nUSER 1\nHEALTHCHECK CMD true\n", []),
        ("FROM scratch\nARG SIGNING_KEY=x\nUSER 1\nHEALTHCHECK CMD true\n", ["no_secret_args"]),
    ],
)
def test_each_check(text: str, expected: list[str]) -> None:
    assert _ids(_checks(text)) == expected


def test_stage_references_are_not_bases() -> None:
    text = "FROM scratch AS a\nFROM a AS b\nUSER 1\nHEALTHCHECK CMD true\n"
    assert _checks(text) == []


def test_build_args_resolve_from_lines() -> None:
    text = "ARG BASE=python:latest\nFROM ${BASE}\nUSER 1\nHEALTHCHECK CMD true\n"
    assert "no_latest_base" in _ids(_checks(text))
    pinned = {"BASE": "127.0.0.1:5000/base@sha256:" + "c" * 64}
    assert _checks(text, args=pinned) == []


def test_target_stage_is_the_one_checked() -> None:
    text = "FROM scratch AS runtime\nUSER 1\nHEALTHCHECK CMD true\nFROM scratch AS debug\n"
    assert _checks(text, target="runtime") == []
    assert _ids(_checks(text)) == ["healthcheck", "non_root_user"]


def test_levels_and_off() -> None:
    text = "FROM python:3.12\n"
    found = _checks(text, levels=LEVELS)
    by_check = {f.check: f.level for f in found}
    assert by_check == {
        "base_pinned_by_digest": "warning",
        "non_root_user": "error",
        "healthcheck": "warning",
    }
    assert _checks(text, levels=dict.fromkeys(LEVELS, "off")) == []


def test_findings_name_file_and_line() -> None:
    found = _checks("FROM scratch\nUSER 1\nARG X_TOKEN=1\nHEALTHCHECK CMD true\n")
    assert found[0].where == "Dockerfile:3"
    assert "build secret" in found[0].message


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        (None, "no .dockerignore"),
        ("", ".env*"),
        (".git\n.env*\n*.key\n*.pem\n", None),
        (".git\n.env\n.env.*\n**/*.key\n**/*.pem\n", None),
        (".git/\n.env*\n*.pem\n", "keys (*.key)"),
        ("# .git\n.env*\n*.key\n*.pem\n", ".git"),
        (".git\n.env\n*.key\n*.pem\n", ".env*"),
    ],
)
def test_dockerignore(text: str | None, missing: str | None) -> None:
    found = check_dockerignore(text, where=".dockerignore", image="web", levels=ALL_ERRORS)
    if missing is None:
        assert found == []
    else:
        assert len(found) == 1 and missing in found[0].message


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("PASSWORD", True),
        ("DB_PASSWORD", True),
        ("API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("CLIENT_SECRET", True),
        ("KEYBOARD_LAYOUT", False),
        ("MONKEY", False),
        ("PATH", False),
        ("BASE_IMAGE", False),
        ("NPM_TOKEN", True),
        ("passphrase", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_sample_app_passes_with_warnings_only() -> None:
    report = run_preflight(load_spec(ROOT / "sample-app" / "release.py"))
    assert report.errors == ()
    assert {f.check for f in report.warnings} == {"base_pinned_by_digest"}
    pinned = {"sample-app": {"BASE_IMAGE": "127.0.0.1:1/base@sha256:" + "d" * 64}}
    assert run_preflight(load_spec(ROOT / "sample-app" / "release.py"), pinned).findings == ()


def test_the_preflight_command_reports_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli

    assert cli.main(["preflight", "--spec", str(ROOT / "sample-app" / "release.py")]) == 0
    out, err = capsys.readouterr()
    assert "Preflight" in out and "warning" in out  # the findings are the result
    assert "Preflight" not in err
    assert "warning(s), no errors" in err


def test_external_bases_apply_build_arguments_and_skip_stages() -> None:
    text = (
        "ARG BASE=debian:bookworm-slim\nFROM ${BASE} AS build\nRUN true\n"
        "FROM build AS test\nFROM scratch AS empty\n"
        "FROM registry.example/tools@sha256:" + "b" * 64 + " AS tools\nFROM ${BASE}\n"
    )
    assert external_bases(text, {}) == [
        "debian:bookworm-slim",
        "registry.example/tools@sha256:" + "b" * 64,
    ]
    assert external_bases(text, {"BASE": "127.0.0.1:5000/base@sha256:" + "c" * 64})[0] == (
        "127.0.0.1:5000/base@sha256:" + "c" * 64
    )
