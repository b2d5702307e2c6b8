"""Sessions: the release stages (each runs `python -m pipeline <stage>`), the tests and the linters.

The stage sessions are the ones any project gets from `pipeline.nox_sessions.register()`, so
`nox -s build -- --platform linux/arm64` is exactly `pipeline build --platform linux/arm64`, on a
laptop and in the generated CI jobs alike. Here they install this checkout, editable, into a uv
venv (development); in a CI job whose Python already has the `pipeline-release` wheel installed
(from the hash-locked pipeline.lock) they run that installed tool, as in any other repository.
Ordering lives in the engine, not here.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "uv|virtualenv"  # uv when present: venvs in seconds
# Jobs of one CI pipeline on one machine (gitlab-ci-local, a shell runner) can share their venvs.
nox.options.envdir = os.environ.get("PIPELINE_NOX_ENVDIR", ".nox")
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

sys.path.insert(0, str(ROOT))
# Standard library and nox only: safe before any venv exists.
from pipeline.nox_sessions import installed_version, register  # noqa: E402

PYTHON = "3.11"


def _install(session: nox.Session, *extras: str) -> None:
    """Editable install of the package, skipped when this venv already holds exactly it (same
    checkout, same pyproject.toml, same extras): a re-run then starts in a fraction of a second."""
    target = f".[{','.join(('tools', *extras))}]"
    digest = hashlib.sha256(
        f"compiled-lib\n{ROOT}\n{target}\n".encode() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    venv = getattr(session.virtualenv, "location", None)
    stamp = Path(venv) / ".pipeline-install" if venv else None
    # Bytecode is compiled once here, even where PYTHONDONTWRITEBYTECODE is set: otherwise every
    # command re-compiles its imports from source (about a second per run).
    if stamp is None or not stamp.is_file() or stamp.read_text() != digest:
        session.install("-q", "-e", target)
        if venv:
            lib = str(Path(venv) / "lib")
            session.run("python", "-m", "compileall", "-q", "-j0", lib, silent=True)
        if stamp is not None:
            stamp.write_text(digest)
    else:
        session.log(f"{target} already installed (pyproject.toml unchanged)")
    compiled = Path(venv) / ".pipeline-compiled" if venv else None
    newest = max(path.stat().st_mtime for path in (ROOT / "pipeline").rglob("*.py"))
    if (
        compiled is None
        or not compiled.is_file()
        or compiled.read_text() != str(ROOT)
        or compiled.stat().st_mtime < newest
    ):
        session.run("python", "-m", "compileall", "-q", str(ROOT / "pipeline"), silent=True)
        if compiled is not None:
            compiled.write_text(str(ROOT))


def _prepare(session: nox.Session, verb: str) -> None:
    """How a stage session gets the tool here: this checkout, editable (register's `install`)."""
    _install(session)
    if verb == "release" and not os.environ.get("CI"):
        # The main job does its own set-up on a laptop; CI jobs set their runners up themselves.
        session.run("python", "-m", "pipeline", "toolchain", "--for", "local", "--root", str(ROOT))


@nox.session(python=PYTHON, default=False)
def toolchain(session: nox.Session) -> None:
    """Install and start the real tools (Debian 12 as root); elsewhere list what is missing.

    `-- --for release` (what CI jobs run) skips what only the tests need."""
    testing = not {"release", "local"} & set(session.posargs)
    _install(session, *(("test",) if testing else ()))
    session.run("python", "-m", "pipeline", "toolchain", "--root", str(ROOT), *session.posargs)


@nox.session(python=PYTHON, default=False)
def doctor(session: nox.Session) -> None:
    """Print each tool's path and version and whether multi-platform builds will work."""
    _install(session, "test")
    session.run("python", "-m", "pipeline", "doctor")


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")  # strict, over pipeline/, tests/, noxfile.py and benchmarks/


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test command: ruff and mypy, then the toolchain and the bench, then every test.

    With arguments (`-- tests/unit`) only pytest runs, with those arguments."""
    _install(session, "test", "lint")
    if not session.posargs:
        _lint(session)
    session.run("python", "-m", "pipeline", "toolchain", "--root", str(ROOT))
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (check and format) and mypy --strict, as the test command runs them."""
    _install(session, "lint")
    _lint(session)


@nox.session(python=PYTHON, default=False)
def benchmark(session: nox.Session) -> None:
    """Time `nox -s release` cold and warm against the same tools in a sequential shell script."""
    _install(session)
    session.run("python", "-m", "pipeline", "toolchain", "--for", "local", "--root", str(ROOT))
    session.run("python", "benchmarks/release.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def wheel(session: nox.Session) -> None:
    """Build the pipeline-release wheel, reproducibly, into build/wheel (`-- DIR` elsewhere)."""
    out = session.posargs[0] if session.posargs else str(ROOT / "build" / "wheel")
    session.install("-q", "pip")  # the build frontend: pip with the pinned setuptools, isolated
    session.run("python", "-m", "tests.support.wheel", out, "python", silent=False)


# The stage sessions, plan, tags and workflows (the spec is found as everywhere: [tool.pipeline]
# spec in pyproject.toml, or --spec). toolchain and doctor are defined above: they install the
# test tools too. A CI job that installed the wheel from pipeline.lock runs that wheel instead.
register(
    install="none" if os.environ.get("CI") and installed_version() else _prepare,
    python=PYTHON,
    exclude=("toolchain", "doctor"),
)
