"""A CNCF distribution registry on loopback: TLS from a throw-away CA and bcrypt htpasswd auth,
deletes enabled. Used by the built-in `local` registry of the main job and by the test bench
(which also starts a plain-HTTP one for promotion and mirror tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import requests
import yaml  # only when starting one

from pipeline.adapters.registry import Credentials, RegistryClient
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.retry import Attempt
from pipeline.sandbox.tls import make_loopback_tls  # cryptography: only when starting
from pipeline.secrets import register
from pipeline.spec import RetryPolicy

DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class RegistryServer:
    host: str  # 127.0.0.1:PORT
    folder: Path
    pid: int
    ca_file: Path | None = None  # None: plain HTTP
    username: str | None = None
    password: str | None = None
    # The server process when this process started it (None when found again from its state).
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        register(self.password)

    def __repr__(self) -> str:
        return f"RegistryServer(host={self.host!r}, tls={self.ca_file is not None}, pid={self.pid})"

    @property
    def credentials(self) -> Credentials | None:
        if self.username and self.password:
            return Credentials(self.username, self.password)
        return None

    def client(
        self,
        retry: RetryPolicy | None = None,
        *,
        anonymous: bool = False,
        on_retry: Callable[[Attempt], None] | None = None,
    ) -> RegistryClient:
        return RegistryClient(
            self.host,
            credentials=None if anonymous else self.credentials,
            ca_file=self.ca_file,
            retry=retry,
            plain_http=self.ca_file is None,
            on_retry=on_retry,
        )

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return _answers(self)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except OSError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    # The sandbox keeps its registry running between commands; this is how it finds it again.
    def save(self, path: Path) -> None:
        data = {
            "host": self.host,
            "folder": str(self.folder),
            "pid": self.pid,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "username": self.username,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path, password: str | None) -> RegistryServer:
        data = json.loads(path.read_text())
        return cls(
            host=data["host"],
            folder=Path(data["folder"]),
            pid=int(data["pid"]),
            ca_file=Path(data["ca_file"]) if data.get("ca_file") else None,
            username=data.get("username"),
            password=password,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(
    folder: Path,
    runner: Runner,
    *,
    tls: bool = True,
    auth: bool = True,
    username: str = "pipeline",
    password: str | None = None,
    port: int | None = None,
) -> RegistryServer:
    """Start `docker-registry serve` on 127.0.0.1 and wait until it answers.

    With `auth`, the password is `password` or a random one; either way it is registered as a
    secret (redacted from every output)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(folder / "data")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": host, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    ca_file: Path | None = None
    if tls:
        files = make_loopback_tls(folder / "tls")
        config["http"] = {
            **config["http"],  # type: ignore[dict-item]
            "tls": {"certificate": str(files.cert), "key": str(files.key)},
        }
        ca_file = files.ca_cert
    if not auth:
        password = None
    elif password is None:
        password = secrets.token_urlsafe(18)
    if password is not None:
        register(password)
        # The registry checks the bcrypt hash on every request (basic auth has no session), so
        # its cost is paid hundreds of times per release. Cost 5 is ~2 ms; the password is 144
        # random bits on loopback, where a slow hash adds no protection.
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        htpasswd = folder / "htpasswd"
        htpasswd.write_text(f"{username}:{hashed}\n")
        htpasswd.chmod(0o600)
        config["auth"] = {"htpasswd": {"realm": "pipeline-sandbox", "path": str(htpasswd)}}
    config_path = folder / "config.yml"

    config_path.write_text(yaml.safe_dump(config, sort_keys=True))
    proc = runner.spawn(["docker-registry", "serve", str(config_path)], log=folder / "registry.log")
    server = RegistryServer(
        host=host,
        folder=folder,
        pid=proc.pid,
        ca_file=ca_file,
        username=username if auth else None,
        password=password,
        process=proc,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (folder / "registry.log").read_text(errors="replace")[-400:]
            raise EnvironmentProblem(f"docker-registry exited with {proc.returncode}: {log}")
        if _answers(server):
            return server
        time.sleep(0.1)
    server.stop()
    raise EnvironmentProblem(f"docker-registry on {host} did not answer within 20s")


def _answers(server: RegistryServer) -> bool:
    scheme = "https" if server.ca_file else "http"
    try:
        response = requests.get(
            f"{scheme}://{server.host}/v2/",
            verify=str(server.ca_file) if server.ca_file else True,
            timeout=2,
        )
    except requests.exceptions.RequestException:
        return False
    return response.status_code in (200, 401)


def trust_in_docker(server: RegistryServer) -> Path | None:
    """Let dockerd trust the registry's CA (certs.d: no daemon restart needed)."""
    if server.ca_file is None:
        return None
    target = DOCKER_CERTS_DIR / server.host / "ca.crt"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(server.ca_file.read_bytes())
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot write {target} (needs root): docker would not trust {server.host}'s CA"
        ) from exc
    return target


def untrust_in_docker(server: RegistryServer) -> None:
    folder = DOCKER_CERTS_DIR / server.host
    with contextlib.suppress(FileNotFoundError):
        (folder / "ca.crt").unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
