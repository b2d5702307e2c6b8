"""Benchmark: every speed goal of the release from one run, on a fresh clone of this project.

    ./noxw -s benchmark -- --runs 3      (or: python benchmarks/release.py [--runs N])

Each round, in a fresh clone (its own registry repositories and version tags, so no run sees
another's), against the built-in loopback registry; the session's venv is set up before anything
is timed. "Cold" means BuildKit's cache pruned and an empty Trivy cache, and new content:

1. one image (sample-app), cold: `nox -s release`;
2. the same again at once (nothing changed: the release is found and verified);
3. a one-line code change committed and tagged: `nox -s release`;
4. the same cold state, then benchmarks/sequential-release.sh on the cold content: the same
   tools doing the same work, one after another, the plain way;
5. four images (tests/support/monorepo.py: one built FROM another), two platforms each, cold
   for their own content: `nox -s release -- --spec …`.

The ratios, medians over the rounds:
  a  cold release / sequential script            <= 0.80
  b  cold release / its own critical path        <= 1.15  (the critical path from the stage
     timings of its dist/release.json: setup, preflight, the longest chain of image steps,
     publish; the release's wall time includes nox and Python starting)
  c  no-change re-run / cold                     <= 10 %
  d  one-line change / cold                      <= 50 %
  e  four images x two platforms / one image     <= 1.5
  f  peak memory of the tool's own process (e)   <= 150 MiB (ru_maxrss of `pipeline release`)
The machine's load average is read before and after every timed run and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline.adapters.runner import Runner  # noqa: E402
from pipeline.engine.workspace import trivy_cache  # noqa: E402
from pipeline.sandbox import local  # noqa: E402
from tests.support.monorepo import write_monorepo  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "sequential-release.sh"
GOALS = {"a": 0.80, "b": 1.15, "c": 0.10, "d": 0.50, "e": 1.5, "f": 150.0}


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Timed:
    seconds: float
    load_before: float
    load_after: float
    report: dict[str, Any] = field(default_factory=dict)


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], report: Path | None = None) -> Timed:
    before = _load()
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(
            f"benchmark: {' '.join(argv[:5])} failed ({result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
    data = json.loads(report.read_text()) if report is not None else {}
    return Timed(elapsed, before, _load(), data)


def _git(folder: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _clone(folder: Path) -> Path:
    """This project at HEAD, on its own (so the timed runs never touch this checkout)."""
    _git(ROOT, "clone", "-q", str(ROOT), str(folder))
    _git(folder, "config", "user.email", "benchmark@example.invalid")
    _git(folder, "config", "user.name", "benchmark")
    return folder


def _commit_and_tag(clone: Path, message: str, version: str) -> str:
    _git(clone, "add", "-A")
    _git(clone, "commit", "-qm", message)
    _git(clone, "tag", f"v{version}")
    return _git(clone, "rev-parse", "HEAD")


def _new_release(clone: Path, repository: str, version: str) -> str:
    """New content in a new registry repository, committed and tagged: nothing to reuse."""
    spec = clone / "sample-app" / "release.py"
    text = spec.read_text()
    start = text.index('repository="') + len('repository="')
    spec.write_text(text[:start] + repository + text[text.index('"', start) :])
    (clone / "sample-app" / "app" / "BENCHMARK.txt").write_text(f"{repository}\n")
    return _commit_and_tag(clone, f"benchmark {repository}", version)


def _one_line_change(clone: Path, version: str) -> None:
    """One line of the application's code changed (a constant in its server module)."""
    server = clone / "sample-app" / "app" / "server.py"
    lines = server.read_text().splitlines(keepends=True)
    lines.append(f"BENCHMARK_VERSION = {version!r}\n")
    server.write_text("".join(lines))
    _commit_and_tag(clone, f"one line for {version}", version)


def _cold(db_repository: str | None) -> None:
    """What a first release of new content finds: no BuildKit cache, no Trivy cache."""
    subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True
    )
    shutil.rmtree(trivy_cache(db_repository), ignore_errors=True)


@dataclass
class Round:
    cold: Timed
    rerun: Timed
    change: Timed
    script: Timed
    four: Timed

    def ratios(self) -> dict[str, float]:
        critical = float(self.cold.report.get("critical_path_seconds") or 0.0)
        return {
            "a": self.cold.seconds / self.script.seconds,
            "b": self.cold.seconds / critical if critical else float("inf"),
            "c": self.rerun.seconds / self.cold.seconds,
            "d": self.change.seconds / self.cold.seconds,
            "e": self.four.seconds / self.cold.seconds,
            "f": float(self.four.report["run"]["peak_rss_mib"]),
        }


class Bench:
    def __init__(self, clone: Path, scratch: Path, stamp: str) -> None:
        runner = Runner(echo=False)
        self.sandbox = local.up(runner, base=True, trivy_db=True)
        self.key = local.throwaway_key(runner)
        if not (self.sandbox.base_image and self.sandbox.db_repository):
            sys.exit("benchmark: the built-in registry came up without base image or DB")
        wrapper = ROOT / ".noxw" / "bin" / "nox"  # the pinned nox ./noxw installs
        nox = str(wrapper) if wrapper.exists() else shutil.which("nox")
        if nox is None:
            sys.exit("benchmark: no nox (run `./noxw -s benchmark`)")
        self.nox = nox
        self.clone = clone
        self.scratch = scratch
        self.stamp = stamp
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")
        }
        self.env.setdefault("PIPELINE_NOX_ENVDIR", str(ROOT / ".nox"))  # venvs are not measured
        netrc = scratch / "netrc"
        host = self.sandbox.registry.host.split(":")[0]
        netrc.write_text(
            f"machine {host} login {self.sandbox.registry.username} "
            f"password {self.sandbox.registry.password}\n"
        )
        netrc.chmod(0o600)
        self.netrc = netrc

    def release(self, *args: str) -> Timed:
        report = self.clone / "dist" / "release.json"
        argv = [self.nox, "-s", "release", *(["--", *args] if args else [])]
        return _run(argv, cwd=self.clone, env=self.env, report=report)

    def script(self, round_: int, version: str, commit: str) -> Timed:
        work = self.scratch / f"script-{round_}"
        work.mkdir()
        _cold(self.sandbox.db_repository)
        ca = self.sandbox.registry.ca_file
        script_env = {
            **self.env,
            **self.sandbox.tool_env(),
            "REGISTRY": self.sandbox.registry.host,
            "REPOSITORY": f"benchmark/script-{self.stamp}-{round_}",
            "VERSION": version,
            "COMMIT": commit,
            "CONTEXT": str(self.clone / "sample-app"),
            "BASE_IMAGE": self.sandbox.base_image or "",
            "DB_REPOSITORY": self.sandbox.db_repository or "",
            "WORK": str(work),
            "COSIGN_KEY": str(self.key.key),
            "COSIGN_PASSWORD": self.key.password,
            "NETRC": str(self.netrc),
            "CA_FILE": str(ca or ""),
        }
        return _run(["sh", str(SCRIPT)], cwd=self.clone, env=script_env)

    def round(self, number: int, console: Console) -> Round:
        minor = int(self.stamp[-6:]) or 1
        base = f"0.{minor}.{number * 10}"
        commit = _new_release(self.clone, f"benchmark/nox-{self.stamp}-{number}", base)
        _cold(self.sandbox.db_repository)
        with console.status(f"round {number}: one image, cold"):
            cold = self.release()
        with console.status(f"round {number}: the same again"):
            rerun = self.release()
        changed = f"0.{minor}.{number * 10 + 1}"
        _one_line_change(self.clone, changed)
        with console.status(f"round {number}: a one-line change"):
            change = self.release()
        with console.status(f"round {number}: the sequential script, cold"):
            script = self.script(number, base, commit)
        mono = self.clone / "bench-mono"
        shutil.rmtree(mono, ignore_errors=True)
        spec = write_monorepo(mono, f"benchmark/mono-{self.stamp}-{number}")
        _commit_and_tag(self.clone, f"four images, round {number}", f"0.{minor}.{number * 10 + 2}")
        _cold(self.sandbox.db_repository)
        with console.status(f"round {number}: four images x two platforms, cold"):
            four = self.release("--spec", str(spec.relative_to(self.clone)))
        return Round(cold, rerun, change, script, four)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _print(rounds: list[Round], console: Console, loads: list[float]) -> bool:
    out = Console()
    raw = Table(title=f"Runs, seconds ({len(rounds)} round(s); median, then each round)")
    for column in ("Run", "Median", "Rounds"):
        raw.add_column(column)
    for name in ("cold", "rerun", "change", "script", "four"):
        values = [getattr(r, name).seconds for r in rounds]
        raw.add_row(name, f"{_median(values):.1f}", ", ".join(f"{v:.1f}" for v in values))
    critical = [float(r.cold.report.get("critical_path_seconds") or 0) for r in rounds]
    inside = [float(r.cold.report["run"]["seconds"]) for r in rounds]
    raw.add_row(
        "cold: critical path", f"{_median(critical):.1f}", ", ".join(f"{v:.1f}" for v in critical)
    )
    raw.add_row(
        "cold: pipeline process", f"{_median(inside):.1f}", ", ".join(f"{v:.1f}" for v in inside)
    )
    out.print(raw)
    names = {
        "a": "cold release / sequential script",
        "b": "cold release / its critical path",
        "c": "no-change re-run / cold",
        "d": "one-line change / cold",
        "e": "4 images x 2 platforms / 1 image",
        "f": "peak memory of the pipeline process (e), MiB",
    }
    table = Table(title="Goals (medians)")
    for column in ("#", "Measure", "Median", "Rounds", "Goal", ""):
        table.add_column(column)
    met = True
    for key, label in names.items():
        values = [r.ratios()[key] for r in rounds]
        value = _median(values)
        percent = key in ("c", "d")

        def text(v: float, percent: bool = percent) -> str:
            return f"{v:.0%}" if percent else f"{v:.2f}"

        goal = f"<= {GOALS[key]:.0%}" if percent else f"<= {GOALS[key]}"
        ok = value <= GOALS[key]
        met = met and ok
        table.add_row(
            key,
            label,
            text(value),
            ", ".join(text(v) for v in values),
            goal,
            "met" if ok else "MISSED",
        )
    out.print(table)
    during = [t for r in rounds for x in (r.cold, r.rerun, r.change, r.script, r.four)
              for t in (x.load_before, x.load_after)]  # fmt: skip
    out.print(
        f"load average (1 min): {loads[0]:.2f} before the rounds, {loads[-1]:.2f} after; "
        f"{min(during):.2f} to {max(during):.2f} around the timed runs; {os.cpu_count()} cores"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="rounds (medians over them)")
    args = parser.parse_args()
    console = Console(stderr=True)
    stamp = time.strftime("%Y%m%d%H%M%S")
    loads = [_load()]
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as scratch_name:
        scratch = Path(scratch_name)
        clone = _clone(scratch / "clone")
        bench = Bench(clone, scratch, stamp)
        # The session's venv is set up for this checkout before anything is timed.
        _run([bench.nox, "-s", "release", "--", "--help"], cwd=clone, env=bench.env)
        rounds = []
        for number in range(1, args.runs + 1):
            done = bench.round(number, console)
            rounds.append(done)
            console.print(
                f"round {number}: cold {done.cold.seconds:.1f}s, re-run {done.rerun.seconds:.1f}s, "
                f"change {done.change.seconds:.1f}s, script {done.script.seconds:.1f}s, "
                f"four images {done.four.seconds:.1f}s"
            )
    loads.append(_load())
    return 0 if _print(rounds, console, loads) else 1


if __name__ == "__main__":
    sys.exit(main())
