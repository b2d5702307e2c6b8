"""The lock part of `pipeline workflows`: write `pipeline.lock` when its inputs changed, check it
offline (`--check`). Not a verb of its own.

- written: re-resolved with pip for every CI target when there is no lock, when its recorded
  inputs differ from this tool's (version, nox, Requires-Dist) or with `--relock`; otherwise
  kept, with the hashes of any wheel of a pinned distribution found in `--find-links` folders
  put in (a tool that is not published locks the wheel it built, with no network);
- checked: the inputs only, so `--check` never needs the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pipeline
from pipeline import paths, ui
from pipeline.adapters.pip import Pip
from pipeline.adapters.runner import Runner
from pipeline.emit import lock
from pipeline.errors import EnvironmentProblem


def tool_requires() -> tuple[str, ...]:
    """The running tool's Requires-Dist (from its installed metadata: no network)."""
    try:
        return tuple(metadata.requires(lock.DISTRIBUTION) or ())
    except metadata.PackageNotFoundError as exc:
        raise EnvironmentProblem(
            f"{lock.DISTRIBUTION} is not installed as a distribution here (run from a checkout?):"
            " install it (`pip install -e .`) to write or check pipeline.lock"
        ) from exc


def check_lock(root: Path) -> str | None:
    """Why `pipeline.lock` at `root` is stale, or None."""
    path = root / paths.LOCK_FILE
    text = path.read_text() if path.is_file() else None
    return lock.check(text, pipeline.__version__, tool_requires())


def local_wheels(folders: Sequence[Path]) -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) of the wheels in `folders` (name and version from the file
    name, PEP 427)."""
    found: dict[str, tuple[str, str]] = {}
    for folder in folders:
        for wheel in sorted(folder.glob("*.whl")):
            name, version = wheel.name.split("-")[:2]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            found[lock.normalise(name)] = (version, digest)
    return found


def write_lock(root: Path, *, find_links: Sequence[Path] = (), relock: bool = False) -> bool:
    """Write `pipeline.lock` at `root` if it changes; return whether it did."""
    path = root / paths.LOCK_FILE
    current = path.read_text() if path.is_file() else None
    version = pipeline.__version__
    requires = tool_requires()
    if relock or lock.check(current, version, requires) is not None or current is None:
        pip = Pip(Runner())
        resolved = []
        with ui.progress(f"{paths.LOCK_FILE}: resolving for {len(lock.TARGETS)} CI platforms"):
            for target in lock.TARGETS:
                resolved += pip.resolve(lock.requirements_for(target, version), target, find_links)
        new = lock.merge(resolved, lock.inputs(version, requires))
    else:
        new = lock.parse(current)
    new = lock.with_local_files(new, local_wheels(find_links))
    text = lock.render(new)
    if text == current:
        ui.ok(f"{paths.LOCK_FILE} is current ({len(new.pins)} pinned distributions)")
        return False
    path.write_text(text)
    ui.ok(f"wrote {paths.LOCK_FILE} ({len(new.pins)} pinned distributions)")
    return True
