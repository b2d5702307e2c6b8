"""The build context as the release sends it: exactly the files .dockerignore lets through,
copied into the run's scratch folder with every timestamp set to the commit's time.

BuildKit's `rewrite-timestamp` only clamps timestamps newer than SOURCE_DATE_EPOCH: a file whose
mtime is older than the commit (edited, then committed later) would keep its own time, and a
fresh clone of the same commit (all files new) would give other layers. With every mtime set to
the commit time, one commit gives one image wherever it is built. The user's working tree is not
touched. The copy's digest (path, mode and content of every file sent) names the context: what
change detection compares between releases.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline import dockerignore


@dataclass(frozen=True)
class Context:
    root: Path  # the copy the build reads
    digest: str  # sha256 over every file sent: its path, mode and content (or link target)
    files: int


def normalized(source: Path, dockerfile: Path, dest: Path, epoch: int | None) -> Context:
    ignore = dockerignore.ignore_file(source, dockerfile)
    patterns = dockerignore.parse(ignore.read_text()) if ignore else []
    prune = not dockerignore.has_exceptions(patterns)
    digest = hashlib.sha256()
    count = 0
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for folder, dirs, files in os.walk(source, topdown=True, followlinks=False):
        here = Path(folder)
        base = here.relative_to(source).as_posix()
        kept = []
        for name in sorted(dirs):
            rel = name if base == "." else f"{base}/{name}"
            if (here / name).is_symlink():
                files.append(name)  # a link to a folder is sent as a link
            elif not dockerignore.excluded(rel, patterns):
                (dest / rel).mkdir()
                kept.append(name)
            elif not prune:
                kept.append(name)  # an exception below may bring some of it back
        dirs[:] = kept
        for name in sorted(files):
            rel = name if base == "." else f"{base}/{name}"
            path = here / name
            keep_anyway = ignore is not None and path == ignore  # BuildKit reads it too
            if dockerignore.excluded(rel, patterns) and not keep_anyway:
                continue
            digest.update(_copy(path, dest / rel, rel, epoch).encode())
            count += 1
    if epoch is not None:
        for folder, _, _ in os.walk(dest, topdown=False):
            os.utime(folder, (epoch, epoch))
    return Context(root=dest, digest="sha256:" + digest.hexdigest(), files=count)


def _copy(path: Path, target: Path, rel: str, epoch: int | None) -> str:
    """Copy one file (or link) with its mode, at the commit's time; its line in the digest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        link = path.readlink()
        target.symlink_to(link)
        entry = f"L {rel} {link}\n"
    else:
        shutil.copyfile(path, target)
        mode = stat.S_IMODE(info.st_mode)
        target.chmod(mode)
        entry = f"F {rel} {mode:o} {_file_digest(target)}\n"
    if epoch is not None:
        os.utime(target, (epoch, epoch), follow_symlinks=False)
    return entry


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
