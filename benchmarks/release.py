"""Benchmark: `nox -s release` cold and warm, against the same tools in a sequential shell script.

    ./noxw -s benchmark            (or: python benchmarks/release.py [--runs N])

Each round commits new content to a clone of this project (its own registry repository and
version tag) and releases it to the built-in loopback registry, so no run sees another's tags;
the session's venv is set up before anything is timed:

- cold: BuildKit's cache pruned, a new repository, an empty Trivy cache; `nox -s release`;
- warm: the same `nox -s release` again at once (the release is already published: reuse);
- script: the same cold state, then benchmarks/sequential-release.sh (the same tool commands,
  one after another) on the same image, registry, base, Trivy DB and key.

Cold and script alternate, so a drift of the machine affects both alike. Prints a table and the
two ratios the engine is held to: warm <= 15 % of cold, release <= 0.9 x the script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline.adapters.runner import Runner  # noqa: E402
from pipeline.engine.workspace import trivy_cache  # noqa: E402
from pipeline.sandbox import local  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "sequential-release.sh"
WARM_TARGET = 0.15
SCRIPT_TARGET = 0.9


def _run(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(
            f"benchmark: {' '.join(argv[:3])} failed ({result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
    return elapsed


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def _clone(folder: Path) -> Path:
    """This project at HEAD, on its own (so the timed runs never touch this checkout)."""
    _git(ROOT, "clone", "-q", str(ROOT), str(folder))
    _git(folder, "config", "user.email", "benchmark@example.invalid")
    _git(folder, "config", "user.name", "benchmark")
    return folder


def _new_release(clone: Path, repository: str, version: str) -> None:
    """New content in a new registry repository, committed and tagged: nothing to reuse."""
    spec = clone / "sample-app" / "release.py"
    text = spec.read_text()
    start = text.index('repository="') + len('repository="')
    spec.write_text(text[:start] + repository + text[text.index('"', start) :])
    (clone / "sample-app" / "app" / "BENCHMARK.txt").write_text(f"{repository}\n")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-qm", f"benchmark {repository}")
    _git(clone, "tag", f"v{version}")


def _cold(db_repository: str | None) -> None:
    """What a first release of new content finds: no BuildKit cache, no Trivy DB."""
    subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True
    )
    shutil.rmtree(trivy_cache(db_repository), ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="cold/warm/script rounds (median)")
    args = parser.parse_args()
    console = Console(stderr=True)
    runner = Runner(echo=False)
    sandbox = local.up(runner, base=True, trivy_db=True)
    key = local.throwaway_key(runner)
    if not (sandbox.base_image and sandbox.db_repository and sandbox.registry.ca_file):
        sys.exit("benchmark: the built-in registry came up without base image, DB or TLS")
    wrapper = ROOT / ".noxw" / "bin" / "nox"  # the pinned nox ./noxw installs
    nox = str(wrapper) if wrapper.exists() else shutil.which("nox")
    if nox is None:
        sys.exit("benchmark: no nox (run `./noxw -s benchmark`)")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    env.setdefault("PIPELINE_NOX_ENVDIR", str(ROOT / ".nox"))  # venvs are not what is measured
    stamp = time.strftime("%Y%m%d%H%M%S")
    timings: dict[str, list[float]] = {"cold": [], "warm": [], "script": []}
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as scratch_name:
        scratch = Path(scratch_name)
        netrc = scratch / "netrc"
        host = sandbox.registry.host.split(":")[0]
        netrc.write_text(
            f"machine {host} login {sandbox.registry.username} "
            f"password {sandbox.registry.password}\n"
        )
        netrc.chmod(0o600)
        clone = _clone(scratch / "clone")
        # The session's venv is set up for this checkout before anything is timed.
        _run([nox, "-s", "release", "--", "--help"], cwd=clone, env=env)
        for round_ in range(1, args.runs + 1):
            version = f"0.{stamp[-6:].lstrip('0') or '0'}.{round_}"
            _new_release(clone, f"benchmark/nox-{stamp}-{round_}", version)
            _cold(sandbox.db_repository)
            with console.status(f"round {round_}: nox -s release (cold)"):
                timings["cold"].append(_run([nox, "-s", "release"], cwd=clone, env=env))
            with console.status(f"round {round_}: nox -s release (warm)"):
                timings["warm"].append(_run([nox, "-s", "release"], cwd=clone, env=env))
            work = scratch / f"script-{round_}"
            work.mkdir()
            _cold(sandbox.db_repository)
            script_env = {
                **env,
                **sandbox.tool_env(),
                "REGISTRY": sandbox.registry.host,
                "REPOSITORY": f"benchmark/script-{stamp}-{round_}",
                "VERSION": version,
                "CONTEXT": str(clone / "sample-app"),
                "BASE_IMAGE": sandbox.base_image,
                "DB_REPOSITORY": sandbox.db_repository,
                "WORK": str(work),
                "COSIGN_KEY": str(key.key),
                "COSIGN_PASSWORD": key.password,
                "NETRC": str(netrc),
                "CA_FILE": str(sandbox.registry.ca_file),
            }
            with console.status(f"round {round_}: sequential script"):
                timings["script"].append(_run(["sh", str(SCRIPT)], cwd=clone, env=script_env))
            console.print(
                f"round {round_}: cold {timings['cold'][-1]:.1f}s, warm "
                f"{timings['warm'][-1]:.1f}s, script {timings['script'][-1]:.1f}s"
            )
    cold, warm, script = (statistics.median(timings[k]) for k in ("cold", "warm", "script"))
    table = Table(title=f"nox -s release vs the sequential script ({args.runs} round(s), median)")
    for column in ("Run", "Seconds", "Ratio", "Target", ""):
        table.add_column(column)
    table.add_row("nox -s release, cold", f"{cold:.1f}", "", "", "")
    table.add_row(
        "nox -s release, warm",
        f"{warm:.1f}",
        f"{warm / cold:.0%} of cold",
        f"<= {WARM_TARGET:.0%}",
        "met" if warm / cold <= WARM_TARGET else "MISSED",
    )
    table.add_row("sequential script", f"{script:.1f}", "", "", "")
    table.add_row(
        "release / script",
        "",
        f"{cold / script:.2f}x",
        f"<= {SCRIPT_TARGET}x",
        "met" if cold / script <= SCRIPT_TARGET else "MISSED",
    )
    Console().print(table)
    return 0 if warm / cold <= WARM_TARGET and cold / script <= SCRIPT_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
