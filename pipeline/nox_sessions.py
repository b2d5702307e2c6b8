"""The release stages as nox sessions, for any project's `noxfile.py`: one call registers them.

    from pipeline.nox_sessions import register
    register()

gives `nox -s preflight`, `build`, `merge`, `scan`, `sign`, `publish`, `release`, `verify`,
`promote` (every stage of `pipeline.stages`, so later ones too), `plan`, `tags`, `workflows`,
`toolchain` and `doctor`. Each runs exactly `pipeline <verb> <session arguments>`
(`nox -s build -- --platform linux/arm64` is `pipeline build --platform linux/arm64`); the
docstrings `nox -l` shows are the verbs' summaries. None is a default session.

Which `pipeline` runs:
- `register()` (`install="none"`): the one installed with nox, in nox's own interpreter
  (`python -P -m pipeline`: a folder named `pipeline` in the working directory never shadows
  it). No session venv: nothing is installed, a session starts in a fraction of a second. This
  is what generated CI does after installing the hash-locked `pipeline.lock`.
- `register(install="pinned")`: a venv per session holding exactly this version,
  `pipeline-release[tools]==<this version>`, or the hash-locked `pipeline.lock` at the project
  root when there is one; a lock naming another version fails the session.
- `register(install=function)`: `function(session, verb)` installs it (this repository's own
  noxfile installs its checkout, editable, for development).

Never a checkout of the tool's repository: the distribution is `pipeline-release` on the package
index. This module imports only the standard library, nox and the standard-library-only
`pipeline.stages` and `pipeline.cli` tables, so a noxfile can load it before any venv exists.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import sysconfig
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import nox

from pipeline import __version__, paths
from pipeline.cli import BY_NAME
from pipeline.stages import STAGES

DISTRIBUTION = "pipeline-release"
REQUIREMENT = f"{DISTRIBUTION}[tools]=={__version__}"
# Verbs that are sessions besides the stages: dry runs, generated CI, the machine.
EXTRA_VERBS = ("plan", "tags", "workflows", "toolchain", "doctor")
STAMP = ".pipeline-install"  # in a session venv: what was installed into it

Prepare: TypeAlias = Callable[[nox.Session, str], None]
Install: TypeAlias = Literal["none", "pinned"] | Prepare


@dataclass(frozen=True)
class SessionInfo:
    name: str  # the nox session and the `pipeline` verb it runs
    doc: str  # the session's docstring (`nox -l`)


def session_infos() -> tuple[SessionInfo, ...]:
    """Every session `register()` can add, in `nox -l` order: the stages, then the rest."""
    names = [stage.name for stage in STAGES] + [v for v in EXTRA_VERBS if v in BY_NAME]
    return tuple(SessionInfo(name, _doc(BY_NAME[name].summary)) for name in names)


def _doc(summary: str) -> str:
    return summary[0].upper() + summary[1:] + "."


def register(
    *,
    install: Install = "none",
    python: str | None = None,
    exclude: Iterable[str] = (),
) -> tuple[str, ...]:
    """Register the sessions in the calling noxfile; return their names.

    `python` is the interpreter of the session venvs (`install="pinned"` or a function; default:
    the one nox runs with). `exclude` leaves sessions out; a session the noxfile already defines
    is kept as it is (with a warning)."""
    skipped = set(exclude)
    unknown = skipped - {info.name for info in session_infos()}
    if unknown:
        raise ValueError(f"register(exclude=...): no such session: {', '.join(sorted(unknown))}")
    names = []
    defined = nox.registry.get()
    for info in session_infos():
        if info.name in skipped:
            continue
        if info.name in defined:
            warnings.warn(
                f"pipeline.nox_sessions.register(): the noxfile defines `{info.name}` itself; "
                f"its own session is kept (exclude={info.name!r} says so without this warning)",
                stacklevel=2,
            )
            continue
        _register_one(info, install, python)
        names.append(info.name)
    return tuple(names)


def _register_one(info: SessionInfo, install: Install, python: str | None) -> None:
    verb = info.name
    if install == "none":

        def session(session: nox.Session) -> None:
            session.run(sys.executable, "-P", "-m", "pipeline", verb, *session.posargs)

        decorate = nox.session(name=verb, venv_backend="none", default=False)
    else:
        prepare: Prepare = install_pinned if install == "pinned" else install

        def session(session: nox.Session) -> None:
            prepare(session, verb)
            session.run("python", "-m", "pipeline", verb, *session.posargs)

        decorate = nox.session(name=verb, python=python, default=False)
    session.__doc__ = info.doc
    session.__name__ = verb
    decorate(session)


def install_arguments(lock: Path) -> tuple[str, ...]:
    """What `install="pinned"` installs: the lock when there is one, else this exact version."""
    if lock.is_file():
        return ("--require-hashes", "--no-deps", "-r", str(lock))
    return (REQUIREMENT,)


def install_pinned(session: nox.Session, verb: str) -> None:
    """Install exactly this version of the tool into the session venv (once per venv)."""
    del verb
    lock = paths.project_root(Path.cwd()) / paths.LOCK_FILE
    arguments = install_arguments(lock)
    digest = hashlib.sha256(
        "\n".join(arguments).encode() + (lock.read_bytes() if lock.is_file() else b"")
    ).hexdigest()
    venv = getattr(session.virtualenv, "location", None)
    stamp = Path(venv) / STAMP if venv else None
    if stamp is not None and stamp.is_file() and stamp.read_text() == digest:
        session.log(f"{arguments[-1]} already installed")
        return
    session.install(*arguments)
    found = session.run("python", "-c", "import pipeline; print(pipeline.__version__)", silent=True)
    installed = str(found or "").strip()
    if installed != __version__:
        session.error(
            f"{lock.name} installs pipeline {installed}, this noxfile runs pipeline {__version__}:"
            " write the lock again with the version nox has, or install that one"
        )
    if stamp is not None:
        stamp.write_text(digest)


def installed_version() -> str | None:
    """The `pipeline-release` installed in this interpreter's environment (site-packages only:
    a checkout on `sys.path` does not count), or None."""
    folders = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
    for dist in importlib.metadata.distributions(name=DISTRIBUTION, path=folders):
        return dist.version
    return None
