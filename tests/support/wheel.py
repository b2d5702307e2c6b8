"""The distribution's wheel, built the way a release of the tool builds it: from the files git
knows (tracked, or new and not ignored; never `build/`, caches or a stale egg-info), in a copy
of them, by pip with the pinned setuptools in an isolated build environment, with
SOURCE_DATE_EPOCH from the last commit, so the same sources give the same bytes.

`python -m tests.support.wheel OUT_DIR [PYTHON]` builds it into OUT_DIR (`nox -s wheel`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pipeline", "pyproject.toml", "README.md")


def source_files(root: Path = ROOT) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *SOURCES],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(
        name
        for name in listed.split("\0")
        if name and "__pycache__" not in name and (root / name).is_file()
    )


def source_date_epoch(root: Path = ROOT) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def build_wheel(out_dir: Path, python: str, root: Path = ROOT) -> Path:
    """Build the wheel into `out_dir` with `python`'s pip (which must have one); its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipeline-wheel-src-") as scratch:
        source = Path(scratch) / "src"
        for name in source_files(root):
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, target)
        env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch(root)}
        env.pop("PIP_REQUIRE_VIRTUALENV", None)
        before = set(out_dir.glob("*.whl"))
        subprocess.run(
            [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out_dir), str(source)],
            env=env,
            check=True,
        )
    built = sorted(set(out_dir.glob("pipeline_release-*.whl")) - before) or sorted(
        out_dir.glob("pipeline_release-*.whl")
    )
    if not built:
        raise RuntimeError(f"no wheel appeared in {out_dir}")
    return built[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    wheel = build_wheel(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else sys.executable)
    print(f"{wheel} sha256:{sha256(wheel)} {wheel.stat().st_size} bytes")
