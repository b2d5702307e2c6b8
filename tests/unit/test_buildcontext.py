"""The context a build is given: what .dockerignore lets through, at the commit's time, with a
digest that names its content whatever the files' own timestamps were."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.engine.buildcontext import normalized

EPOCH = 1_700_000_000


def _tree(root: Path, mtime: int) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "server.py").write_text("print('hi')\n")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    (root / "app" / "run.sh").chmod(0o755)
    (root / "dist").mkdir()
    (root / "dist" / "big.bin").write_bytes(b"x" * 10)
    (root / "dist" / "keep.txt").write_text("kept\n")
    (root / "deploy.key").write_text("secret\n")
    (root / "empty").mkdir()
    (root / "Dockerfile").write_text("FROM scratch\nCOPY app/ app/\n")
    (root / ".dockerignore").write_text("dist\n!dist/keep.txt\n*.key\n")
    (root / "app" / "link").symlink_to("server.py")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_only_what_dockerignore_lets_through_at_the_commit_time(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", 1_600_000_000)  # older than the commit
    context = normalized(source, source / "Dockerfile", tmp_path / "out", EPOCH)
    assert _files(context.root) == {
        ".dockerignore",
        "Dockerfile",
        "app/server.py",
        "app/run.sh",
        "app/link",
        "dist/keep.txt",
    }
    assert (context.root / "empty").is_dir()
    assert (context.root / "app" / "link").is_symlink()
    assert (context.root / "app" / "run.sh").stat().st_mode & 0o777 == 0o755
    for path in [context.root, *context.root.rglob("*")]:
        assert path.lstat().st_mtime == EPOCH, path
    assert context.files == 6
    assert (source / "app" / "server.py").stat().st_mtime == 1_600_000_000, "source untouched"


def test_the_digest_names_the_content_not_the_timestamps(tmp_path: Path) -> None:
    old = _tree(tmp_path / "old", 1_600_000_000)
    new = _tree(tmp_path / "new", 1_800_000_000)  # a fresh clone: every file new
    one = normalized(old, old / "Dockerfile", tmp_path / "a", EPOCH)
    two = normalized(new, new / "Dockerfile", tmp_path / "b", EPOCH)
    assert one.digest == two.digest
    (new / "app" / "server.py").write_text("print('changed')\n")
    assert normalized(new, new / "Dockerfile", tmp_path / "c", EPOCH).digest != one.digest
    (new / "dist" / "big.bin").write_bytes(b"ignored anyway")
    (new / "app" / "server.py").write_text("print('hi')\n")
    assert normalized(new, new / "Dockerfile", tmp_path / "d", EPOCH).digest == one.digest
