"""`pipeline.nox_sessions.register()`: the stage sessions any noxfile gets with one call."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import nox
import nox.registry
import pytest

from pipeline import __version__, nox_sessions, stages
from pipeline.adopt.render import NOXFILE_LINES
from pipeline.emit import github, gitlab
from pipeline.specload import load_spec
from tests.unit.test_stages import _run_lines

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """nox's session registry, empty for the test (the real one is left as it was)."""
    fresh: dict[str, object] = {}
    monkeypatch.setattr(nox.registry, "_REGISTRY", fresh)
    yield fresh


def test_every_stage_and_the_extra_verbs_with_their_summaries(
    registry: dict[str, object],
) -> None:
    names = nox_sessions.register()
    assert names == (
        *(s.name for s in stages.STAGES),
        "plan",
        "tags",
        "workflows",
        "toolchain",
        "doctor",
    )
    assert tuple(registry) == names
    build = nox.registry.get()["build"]
    assert (
        build.__doc__
        == "Multi-platform build pushed by digest only, no tag (`--platform P`: one platform)."
    )
    assert all(not func.default for func in nox.registry.get().values())


def test_installed_mode_runs_noxs_own_interpreter_without_a_venv(
    registry: dict[str, object],
) -> None:
    nox_sessions.register()
    for func in nox.registry.get().values():
        assert func.venv_backend == "none"


def test_pinned_and_custom_modes_get_a_venv(registry: dict[str, object]) -> None:
    nox_sessions.register(install="pinned", python="3.11", exclude=("doctor",))
    funcs = nox.registry.get()
    assert "doctor" not in funcs
    assert {f.python for f in funcs.values()} == {"3.11"}
    assert {f.venv_backend for f in funcs.values()} == {None}


def test_every_session_a_generated_job_runs_is_registered(registry: dict[str, object]) -> None:
    spec = load_spec(ROOT / "sample-app" / "release.py").spec
    lines = _run_lines(github.workflow(spec, "release.py").to_data())
    lines += _run_lines(gitlab.pipeline(spec, "release.py").to_data())
    used = {line.split()[2] for line in lines if line.startswith("nox -s ")}
    assert used <= set(nox_sessions.register())


def test_a_session_the_noxfile_defines_is_kept(registry: dict[str, object]) -> None:
    @nox.session(name="build", venv_backend="none")
    def own(session: nox.Session) -> None:
        del session

    with pytest.warns(UserWarning, match="defines `build` itself"):
        names = nox_sessions.register()
    assert "build" not in names and nox.registry.get()["build"] is own
    with pytest.raises(ValueError, match="no such session: bild"):
        nox_sessions.register(exclude=("bild",))


def test_pinned_installs_the_lock_when_present_else_this_exact_version(tmp_path: Path) -> None:
    lock = tmp_path / "pipeline.lock"
    assert nox_sessions.install_arguments(lock) == (f"pipeline-release[tools]=={__version__}",)
    lock.write_text("pipeline-release==0.2.0 --hash=sha256:00\n")
    assert nox_sessions.install_arguments(lock) == (
        "--require-hashes",
        "--no-deps",
        "-r",
        str(lock),
    )


def test_noxfile_lines_are_what_a_noxfile_runs() -> None:
    tree = ast.parse("\n".join(NOXFILE_LINES))
    assert (
        isinstance(tree.body[0], ast.ImportFrom) and tree.body[0].module == "pipeline.nox_sessions"
    )


def _pipeline_imports(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_loads_before_any_venv_exists() -> None:
    """Only the standard library, nox and standard-library-only pipeline modules, transitively:
    a noxfile imports it with nothing of the tool's dependencies installed."""
    seen: set[str] = set()
    todo = ["pipeline.nox_sessions"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        path = ROOT.joinpath(*parts).with_suffix(".py")
        if not path.is_file():
            path = ROOT.joinpath(*parts, "__init__.py")
        for imported in _pipeline_imports(path):
            top = imported.split(".")[0]
            if top == "pipeline":
                candidate = ROOT.joinpath(*imported.split("."))
                if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
                    todo.append(imported)
            elif top not in ("__future__", "nox"):
                assert top in sys.stdlib_module_names, f"{name} imports {imported}"
    assert "pipeline.stages" in seen and "pipeline.cli" in seen
