"""A second, real Docker host on this machine, for native-builder and daemon-fault tests.

`start_docker_host(folder)` starts another `dockerd` beside the host's, sharing nothing with it
but the kernel and /etc/docker/certs.d (so it trusts the bench registries as the host daemon
does):

- its own `--data-root`, `--exec-root`, `--pidfile` and config file under `folder`; dockerd then
  starts its own managed containerd (socket, state and content under the exec and data roots), so
  the two daemons share no containerd, namespace or image store; the containerd image store
  (`features.containerd-snapshotter`) is on, as on the host daemon;
- its own bridge `pdh<PORT>` on a free /24 (chosen against the routing table) with
  `--iptables=false`: RUN steps get a network namespace on that bridge but no NAT, so no egress
  (a build that needs egress passes `--network host`, which dockerd's builder allows). NOT
  `--bridge none`: a dockerd started with it deletes the `docker0` interface at start-up, which
  breaks every container and RUN step of the host daemon;
- the API only on `tcp://127.0.0.1:PORT`, `--tlsverify`, with a CA, a server certificate and a
  client certificate made now (pipeline.sandbox.tls);
- a docker context of its own (in `docker_config`, or the caller's default config), which buildx
  lists as a `docker`-driver builder of the same name.

`stop()` removes the context, stops dockerd (and whatever of its containerd and shims is left),
deletes the bridge and the data root, and leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pytest
import requests

from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.sandbox.registry import free_port
from pipeline.sandbox.tls import make_loopback_tls

if TYPE_CHECKING:
    from tests.support.bench import Bench

# Debian's docker.io installs it in /usr/sbin, which a non-login root PATH may lack.
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
# Where the /24 of a second host's bridge is looked for (dockerd's own pools skip a range that
# overlaps a route, so the host daemon's later networks do not collide with it either).
BRIDGE_CANDIDATES = ipaddress.IPv4Network("172.29.0.0/16")
START_TIMEOUT = 60.0
# Where runc keeps the state of build-step containers (dockerd's builder runs runc without --root;
# the host daemon's are there too, told apart by their rootfs).
RUNC_DEFAULT_ROOT = "/run/runc"
EXEC_ROOTS = Path("/run/pipeline-docker-hosts")  # one exec root per host, named by its bridge


@dataclass
class DockerHost:
    name: str  # the docker context (and buildx builder) name
    host: str  # tcp://127.0.0.1:PORT
    folder: Path
    cert_path: Path  # DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem
    bridge: str
    subnet: str
    docker_config: Path | None  # where the context lives (None: the default docker config)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def data_root(self) -> Path:
        return self.folder / "data"

    @property
    def exec_root(self) -> Path:
        # Not under `folder`: containerd's sockets live here and a unix socket path is limited
        # to 108 bytes, which a pytest tmp_path of a long test name already nearly fills.
        return EXEC_ROOTS / self.bridge

    @property
    def log(self) -> Path:
        return self.folder / "dockerd.log"

    @property
    def config_file(self) -> Path:
        return self.folder / "daemon.json"

    def env(self) -> dict[str, str]:
        """What points the docker CLI (and buildx's default builder) at this host."""
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.cert_path),
        }

    def docker(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`docker --context NAME ARGS` (the caller checks the result)."""
        child = {**os.environ, **(env or {})}
        if self.docker_config is not None:
            child.setdefault("DOCKER_CONFIG", str(self.docker_config))
        return subprocess.run(
            ["docker", "--context", self.name, *args],
            env=child,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and _answers(self)

    def reload(self) -> None:
        """SIGHUP: dockerd re-reads the reloadable keys of its config file."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGHUP)

    def send_signal(self, signum: int) -> None:
        """Send `signum` to dockerd alone: SIGKILL is a crash of the host (its containerd dies
        with it), SIGSTOP a host that hangs with its connections open (SIGCONT resumes it)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """Remove the context, stop dockerd and its containerd, delete the bridge and the data
        root. Safe to call more than once."""
        runner = _runner(self.docker_config)
        runner.run(["docker", "context", "rm", "--force", self.name], check=False, quiet=True)
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)  # if it was stopped
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Neither a clean exit nor a crash of dockerd ends the containers of build steps (runc
        # children of dockerd, state in /run/runc) or of `docker run` (containerd shims, state
        # under the exec root): delete those of this host through runc, which kills their
        # processes and removes their cgroups, then end whatever still names this host's folder
        # (containerd, shims, runc parents), by pid.
        for root, container in runc_containers(self.folder, self.exec_root):
            runner.run(["runc", "--root", str(root), "delete", "--force", container], check=False)
        for pid in {*pids_naming(self.folder), *pids_naming(self.exec_root)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_under(self.folder, runner)
        unmount_under(self.exec_root, runner)
        runner.run(["ip", "link", "delete", self.bridge], check=False, quiet=True)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def __enter__(self) -> DockerHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_docker_host(
    folder: Path,
    *,
    docker_config: Path | None = None,
    name: str | None = None,
    extra_config: Mapping[str, object] | None = None,
    unix_socket: Path | None = None,
) -> DockerHost:
    """Start a second dockerd on tcp://127.0.0.1:PORT (TLS, client certificates) with its own
    roots, containerd, bridge and docker context; wait until it answers.

    `docker_config` is the DOCKER_CONFIG the context is created in (the bench's, so that the
    same CLI invocation has the bench registry login and the context); `extra_config` is merged
    into the daemon's config file (e.g. `registry-mirrors`); `unix_socket` adds a socket the API
    answers on too (to mount into a container, as a CI runner mounts its daemon's)."""
    folder.mkdir(parents=True, exist_ok=True)
    tls = make_loopback_tls(folder / "tls", client=True)
    assert tls.client_cert is not None and tls.client_key is not None
    cert_path = folder / "client"
    cert_path.mkdir(exist_ok=True)
    for source, target in (
        (tls.ca_cert, "ca.pem"),
        (tls.client_cert, "cert.pem"),
        (tls.client_key, "key.pem"),
    ):
        shutil.copyfile(source, cert_path / target)
    (cert_path / "key.pem").chmod(0o600)

    port = free_port()
    runner = _runner(docker_config)
    bridge = f"pdh{port}"
    subnet = _free_subnet(runner, seed=port)
    gateway = next(subnet.hosts())
    host = DockerHost(
        name=name or f"pipeline-dh-{port}",
        host=f"tcp://127.0.0.1:{port}",
        folder=folder,
        cert_path=cert_path,
        bridge=bridge,
        subnet=str(subnet),
        docker_config=docker_config,
    )
    config: dict[str, object] = {
        "features": {"containerd-snapshotter": True},
        "data-root": str(host.data_root),
        "exec-root": str(host.exec_root),
        "pidfile": str(folder / "dockerd.pid"),
        "hosts": [host.host, *([f"unix://{unix_socket}"] if unix_socket else [])],
        "tls": True,
        "tlsverify": True,
        "tlscacert": str(tls.ca_cert),
        "tlscert": str(tls.cert),
        "tlskey": str(tls.key),
        "bridge": bridge,
        "iptables": False,
        "ip6tables": False,
        "ip-masq": False,
        **(extra_config or {}),
    }
    host.config_file.write_text(json.dumps(config, indent=2) + "\n")
    try:
        runner.run(["ip", "link", "add", bridge, "type", "bridge"], quiet=True)
        runner.run(
            ["ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge], quiet=True
        )
        runner.run(["ip", "link", "set", bridge, "up"], quiet=True)
        host.process = runner.spawn([DOCKERD, "--config-file", str(host.config_file)], log=host.log)
        _wait_until_up(host)
        runner.run(
            [
                "docker",
                "context",
                "create",
                host.name,
                "--description",
                f"second dockerd for tests ({folder})",
                "--docker",
                f"host={host.host},ca={tls.ca_cert},cert={tls.client_cert},key={tls.client_key}",
            ],
            quiet=True,
        )
    except BaseException:
        host.stop()
        raise
    return host


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory, bench: Bench) -> Iterator[DockerHost]:
    """A second Docker host for the session, its context in the bench's DOCKER_CONFIG."""
    host = start_docker_host(
        tmp_path_factory.mktemp("dockerhost"), docker_config=bench.provisioned.docker_config
    )
    try:
        yield host
    finally:
        host.stop()


def _runner(docker_config: Path | None) -> Runner:
    runner = Runner(echo=False)
    if docker_config is not None:
        runner = runner.with_env(DOCKER_CONFIG=str(docker_config))
    return runner


def _free_subnet(runner: Runner, *, seed: int) -> ipaddress.IPv4Network:
    """A /24 of BRIDGE_CANDIDATES that overlaps no route of this machine."""
    routes = json.loads(runner.run(["ip", "-4", "-json", "route", "show", "table", "all"]).stdout)
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(dst, strict=False))
    candidates: list[ipaddress.IPv4Network] = list(BRIDGE_CANDIDATES.subnets(new_prefix=24))
    for offset in range(len(candidates)):
        candidate = candidates[(seed + offset) % len(candidates)]
        if not any(candidate.overlaps(net) for net in taken if net.prefixlen > 0):
            return candidate
    raise EnvironmentProblem(f"no free /24 in {BRIDGE_CANDIDATES} for a second docker bridge")


def _answers(host: DockerHost) -> bool:
    try:
        response = requests.get(
            f"https://127.0.0.1:{host.port}/_ping",
            cert=(str(host.cert_path / "cert.pem"), str(host.cert_path / "key.pem")),
            verify=str(host.cert_path / "ca.pem"),
            timeout=2,
        )
    except requests.exceptions.RequestException:
        return False
    return response.status_code == 200


def _wait_until_up(host: DockerHost) -> None:
    assert host.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            tail = host.log.read_text(errors="replace")[-600:]
            code = host.process.returncode
            raise EnvironmentProblem(f"second dockerd exited with {code}: {tail}")
        if _answers(host):
            return
        time.sleep(0.2)
    raise EnvironmentProblem(f"second dockerd on {host.host} did not answer in {START_TIMEOUT}s")


def pids_naming(folder: Path) -> list[int]:
    """Processes whose command line names `folder`: this host's containerd, shims and the runc
    parents of build steps (the steps themselves are found through runc's state)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def runc_containers(folder: Path, exec_root: Path | None = None) -> list[tuple[Path, str]]:
    """(runc root, container id) of every container left under `folder`: build steps in runc's
    default root whose rootfs is under it, and containerd's under a dockerd's exec root."""
    found = []
    for state in Path(RUNC_DEFAULT_ROOT).glob("*/state.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            rootfs = json.loads(state.read_text())["config"]["rootfs"]
            if str(rootfs).startswith(f"{folder}/"):
                found.append((Path(RUNC_DEFAULT_ROOT), state.parent.name))
    if exec_root is not None:
        for state in (exec_root / "runtime-runc").glob("*/*/state.json"):
            found.append((state.parent.parent, state.parent.name))
    return found


def unmount_under(folder: Path, runner: Runner) -> None:
    prefix = str(folder) + "/"
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if len(line.split()) > 1 and line.split()[1].startswith(prefix)
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        runner.run(["umount", "--lazy", mount], check=False, quiet=True)
