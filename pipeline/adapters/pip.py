"""pip, for resolving the lock: `pip install --dry-run --report` per CI platform.

pip resolves the requirements for a platform that is not this machine's (`--platform`, the
target's manylinux tags; `--python-version`, `--implementation`, `--abi`) with wheels only and
writes what it would install to a JSON report (`--report`, pip's installation report): name,
version, the file's URL and its sha256 from the index. Nothing is installed (`--dry-run`, into a
throw-away `--target`). The index is pip's own configuration (pip.conf, PIP_INDEX_URL); a
`--find-links` folder adds wheels built here (a tool that is not published), hashed from disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipeline.adapters.runner import Runner
from pipeline.emit.lock import PYTHON_VERSION, ResolvedFile, Target, platform_tags


def pip_command() -> list[str]:
    """This interpreter's pip, or the `pip` on PATH (a venv made by uv has none of its own):
    which pip resolves does not matter, the target platform and Python are given."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    return ["pip"]


def resolve_argv(
    pip: Sequence[str],
    requirements: Sequence[str],
    target: Target,
    *,
    report: Path,
    scratch: Path,
    find_links: Sequence[Path] = (),
) -> list[str]:
    abi = "cp" + PYTHON_VERSION.replace(".", "")
    argv = [
        *pip,
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--disable-pip-version-check",
        "--report",
        str(report),
        "--target",
        str(scratch),
        "--only-binary",
        ":all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        abi,
    ]
    for tag in platform_tags(target):
        argv += ["--platform", tag]
    for folder in find_links:
        argv += ["--find-links", str(folder)]
    return [*argv, *requirements]


def files_of_report(report: Mapping[str, Any], machine: str) -> list[ResolvedFile]:
    """What pip's installation report says it would install, with each file's sha256 (from the
    index, or hashed from disk for a local file)."""
    resolved = []
    items = report.get("install")
    for item in items if isinstance(items, list) else []:
        metadata = item["metadata"]
        info = item["download_info"]
        url = str(info["url"])
        digest = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
        parsed = urlparse(url)
        if parsed.scheme == "file":
            digest = hashlib.sha256(Path(unquote(parsed.path)).read_bytes()).hexdigest()
        if not digest:
            raise ValueError(f"the index gave no sha256 for {url}")
        resolved.append(
            ResolvedFile(
                name=str(metadata["name"]),
                version=str(metadata["version"]),
                filename=unquote(parsed.path.rsplit("/", 1)[-1]),
                sha256=str(digest),
                machine=machine,
            )
        )
    return resolved


class Pip:
    def __init__(self, runner: Runner, pip: Sequence[str] | None = None) -> None:
        self.runner = runner
        self.pip = list(pip) if pip is not None else pip_command()

    def resolve(
        self, requirements: Sequence[str], target: Target, find_links: Sequence[Path] = ()
    ) -> list[ResolvedFile]:
        with tempfile.TemporaryDirectory(prefix="pipeline-lock-") as folder:
            report = Path(folder) / "report.json"
            argv = resolve_argv(
                self.pip,
                requirements,
                target,
                report=report,
                scratch=Path(folder) / "target",
                find_links=find_links,
            )
            self.runner.run(
                argv,
                timeout=600,
                error_message=(
                    f"pip could not resolve {' '.join(requirements)} for CPython "
                    f"{PYTHON_VERSION} on {target.machine} (an unpublished tool needs its wheel: "
                    "--find-links DIR)"
                ),
            )
            return files_of_report(json.loads(report.read_text()), target.machine)
