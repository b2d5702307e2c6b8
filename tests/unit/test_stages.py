"""The stage table is the one place stage names live: CLI, engine and emitters read it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from pipeline import cli, stages
from pipeline.emit import github, gitlab
from pipeline.engine.run import STEP_FUNCTIONS
from pipeline.specload import load_spec
from tests.support.spec_variants import variants

SAMPLE = load_spec(Path(__file__).resolve().parents[2] / "sample-app" / "release.py").spec


def test_every_step_has_an_engine_function() -> None:
    assert set(STEP_FUNCTIONS) == set(get_args(stages.Step))


def test_every_stage_is_a_verb_with_the_table_summary() -> None:
    for stage in stages.STAGES:
        verb = cli.BY_NAME[stage.name]
        assert (verb.module, verb.summary) == (stage.module, stage.summary)
    assert set(get_args(stages.StageName)) == {s.name for s in stages.STAGES}


def test_release_runs_the_steps_in_order() -> None:
    assert stages.stage("release").steps == ("preflight", "build", "scan", "sign", "publish")
    assert [s.name for s in stages.STAGES if s.per_platform] == ["build"]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ((), "nox -s scan"),
        (("--platform", "linux/arm/v7"), "nox -s scan -- --platform linux/arm/v7"),
        (("--tag", '"$TAG"'), 'nox -s scan -- --tag "$TAG"'),
        (("--tag", "a b"), "nox -s scan -- --tag 'a b'"),
    ],
)
def test_session_command(args: tuple[str, ...], line: str) -> None:
    assert stages.session_command("scan", *args) == line


def _run_lines(data: object) -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("run", "script") and isinstance(value, str):
                found += value.splitlines()
            elif key == "script" and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += _run_lines(value)
    elif isinstance(data, list):
        for item in data:
            found += _run_lines(item)
    return found


@pytest.mark.parametrize("variant", sorted(variants(SAMPLE)))
def test_generated_jobs_only_run_stages_of_the_table(variant: str) -> None:
    spec = variants(SAMPLE)[variant]
    lines = _run_lines(github.workflow(spec, "release.py").to_data())
    lines += _run_lines(gitlab.pipeline(spec, "release.py").to_data())
    sessions = [line.split()[2] for line in lines if line.startswith("nox -s ")]
    assert sessions, "the generated jobs run stage sessions"
    assert set(sessions) <= {s.name for s in stages.STAGES} | {"toolchain"}
