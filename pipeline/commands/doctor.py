"""`pipeline doctor`: each tool's path and version, and whether multi-platform builds will work."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rich.table import Table

from pipeline import ui
from pipeline.adapters import docker_engine
from pipeline.adapters.runner import Runner, which
from pipeline.adapters.trivy import binary_sha256, check_binary
from pipeline.errors import CommandError, EnvironmentProblem, ToolMissing
from pipeline.toolchain.bootstrap import BINFMT_DIR
from pipeline.toolchain.requirements import TOOLS, Tool

BINFMT = {"linux/arm64": "qemu-aarch64", "linux/arm/v7": "qemu-arm"}


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--strict", action="store_true", help="exit non-zero when anything is missing"
    )
    parser.add_argument(
        "--for",
        dest="purpose",
        choices=("release", "local", "tests"),
        default="local",
        help="count what this purpose needs: any release, a release on this machine with the "
        "built-in registry (default), or this project's test suite",
    )


def tool_row(tool: Tool, runner: Runner) -> tuple[str, str, str, bool]:
    path = which("docker" if tool.name == "docker-buildx" else tool.name, runner.env.get("PATH"))
    if path is None:
        return "—", "missing", f"{tool.needed}: {tool.install_line}", False
    try:
        out = runner.run(list(tool.version_argv), quiet=True, timeout=20)
    except (CommandError, ToolMissing):
        return path, "no version", f"{tool.needed}: {tool.install_line}", False
    match = re.search(tool.version_pattern, out.stdout + out.stderr)
    version = match.group(1) if match else "?"
    numbers = re.match(r"v?(\d+)\.(\d+)", version)
    if tool.min_major_minor is None or numbers is None:
        # No comparable version (e.g. a distribution build reporting "devel"): present is enough.
        return path, version, tool.needed, True
    ok = (int(numbers.group(1)), int(numbers.group(2))) >= tool.min_major_minor
    return path, version, tool.needed, ok


def multi_platform(runner: Runner) -> list[tuple[str, str, bool]]:
    checks: list[tuple[str, str, bool]] = []
    try:
        engine = docker_engine.info()
        checks.append(("docker daemon", f"{engine.server_version} ({engine.architecture})", True))
        checks.append(
            (
                "containerd image store",
                "on"
                if engine.containerd_store
                else 'off: set {"features": {"containerd-snapshotter": true}}',
                engine.containerd_store,
            )
        )
    except EnvironmentProblem as exc:
        checks.append(("docker daemon", str(exc), False))
    try:
        out = runner.run(
            ["docker", "buildx", "ls", "--format", "json"], quiet=True, timeout=20
        ).stdout
        builders = [json.loads(line) for line in out.splitlines() if line.strip()]
        current = builders[0] if builders else {}
        platforms = sorted(
            {p for node in current.get("Nodes", []) for p in node.get("Platforms", [])}
        )
        checks.append(
            (
                f"buildx builder {current.get('Name', '?')}",
                f"driver {current.get('Driver', '?')}",
                bool(current),
            )
        )
        checks.append(
            ("builder platforms", ", ".join(platforms) or "none", "linux/arm64" in platforms)
        )
    except (CommandError, ToolMissing, json.JSONDecodeError) as exc:
        checks.append(("buildx", str(exc), False))
    for platform, handler in BINFMT.items():
        entry = Path(BINFMT_DIR) / handler
        enabled = entry.is_file() and entry.read_text().startswith("enabled")
        flags = (
            next((line for line in entry.read_text().splitlines() if line.startswith("flags")), "")
            if entry.is_file()
            else ""
        )
        checks.append(
            (
                f"binfmt {platform}",
                f"{handler} {'enabled' if enabled else 'missing'} {flags}".strip(),
                enabled,
            )
        )
    return checks


def trivy_pin(runner: Runner) -> tuple[str, str, bool]:
    """Whether the trivy on PATH is the binary whose sha256 this project pins."""
    found = which("trivy", runner.env.get("PATH"))
    if found is None:
        return "trivy sha256", "trivy missing", False
    try:
        check_binary(Path(found), runner.env)
    except EnvironmentProblem as exc:
        return "trivy sha256", exc.message, False
    return "trivy sha256", f"{binary_sha256(Path(found))[:16]}… is the pinned binary", True


def run(args: argparse.Namespace) -> int:
    runner = Runner(echo=False)
    tools = Table(title="Tools")
    for column in ("Tool", "Path", "Version", "Needed", "OK"):
        tools.add_column(column)
    problems = 0
    for tool in TOOLS:
        path, version, needed, ok = tool_row(tool, runner)
        counted = args.purpose in tool.purposes
        problems += counted and not ok
        state = (
            "yes" if ok else ("[red]no[/]" if counted else f"no ({', '.join(tool.purposes)} only)")
        )
        tools.add_row(tool.name, path, version, needed, state)
    ui.table(tools)
    checks = Table(title="Multi-platform builds")
    for column in ("Check", "State", "OK"):
        checks.add_column(column)
    for name, detail, ok in [*multi_platform(runner), trivy_pin(runner)]:
        problems += not ok
        checks.add_row(name, detail, "yes" if ok else "[red]no[/]")
    ui.table(checks)
    if problems:
        message = f"{problems} problem(s); `nox -s toolchain` installs and starts what is missing"
        if args.strict:
            raise EnvironmentProblem(message)
        ui.warn(message)
    else:
        ui.ok("everything needed for multi-platform releases is here")
    return 0
