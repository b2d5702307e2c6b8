"""The build context's digest: what .dockerignore lets through, by path, mode and content, never
by timestamp (the image's timestamps are all rewritten)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.engine.buildcontext import describe


def _tree(root: Path, mtime: int) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "server.py").write_text("print('hi')\n")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    (root / "app" / "run.sh").chmod(0o755)
    (root / "dist").mkdir()
    (root / "dist" / "big.bin").write_bytes(b"x" * 10)
    (root / "dist" / "keep.txt").write_text("kept\n")
    (root / "deploy.key").write_text("secret\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY app/ app/\n")
    (root / ".dockerignore").write_text("dist\n!dist/keep.txt\n*.key\n")
    (root / "app" / "link").symlink_to("server.py")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_the_digest_names_what_is_sent_not_when(tmp_path: Path) -> None:
    old = _tree(tmp_path / "old", 1_600_000_000)
    new = _tree(tmp_path / "new", 1_800_000_000)  # a fresh clone: every file new
    one, two = describe(old, old / "Dockerfile"), describe(new, new / "Dockerfile")
    assert one == two
    assert one.files == 6  # .dockerignore, Dockerfile, 3 in app/, dist/keep.txt
    (new / "dist" / "big.bin").write_bytes(b"ignored: not sent")
    (new / "deploy.key").write_text("ignored too\n")
    assert describe(new, new / "Dockerfile") == one
    (new / "dist" / "keep.txt").write_text("re-included by ! and so counted\n")
    assert describe(new, new / "Dockerfile").digest != one.digest


def test_mode_and_content_count(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree", 1_600_000_000)
    before = describe(root, root / "Dockerfile").digest
    (root / "app" / "run.sh").chmod(0o644)
    assert describe(root, root / "Dockerfile").digest != before
