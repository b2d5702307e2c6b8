"""The build context as BuildKit is sent it: exactly the files .dockerignore lets through
(Docker's rules, `pipeline.dockerignore`), named by one digest over their paths, modes and
contents (or link targets). Their timestamps do not count: the release rewrites every timestamp
in the image (see `pipeline.engine.build.REPRODUCIBLE_EPOCH`). Change detection compares this
digest between releases.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline import dockerignore


@dataclass(frozen=True)
class Context:
    digest: str  # sha256 over every file sent: its path, mode and content (or link target)
    files: int


def describe(source: Path, dockerfile: Path) -> Context:
    ignore = dockerignore.ignore_file(source, dockerfile)
    patterns = dockerignore.parse(ignore.read_text()) if ignore else []
    prune = not dockerignore.has_exceptions(patterns)
    digest = hashlib.sha256()
    count = 0
    for folder, dirs, files in os.walk(source, topdown=True, followlinks=False):
        here = Path(folder)
        base = here.relative_to(source).as_posix()
        kept = []
        for name in sorted(dirs):
            rel = name if base == "." else f"{base}/{name}"
            if (here / name).is_symlink():
                files.append(name)  # a link to a folder is sent as a link
            elif not dockerignore.excluded(rel, patterns):
                digest.update(f"D {rel}\n".encode())
                kept.append(name)
            elif not prune:
                kept.append(name)  # an exception below may bring some of it back
        dirs[:] = kept
        for name in sorted(files):
            rel = name if base == "." else f"{base}/{name}"
            if dockerignore.excluded(rel, patterns):
                continue
            digest.update(_entry(here / name, rel).encode())
            count += 1
    return Context(digest="sha256:" + digest.hexdigest(), files=count)


def _entry(path: Path, rel: str) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return f"L {rel} {path.readlink()}\n"
    return f"F {rel} {stat.S_IMODE(info.st_mode):o} {_file_digest(path)}\n"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
