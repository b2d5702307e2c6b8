"""The Docker engine through the Docker SDK: daemon checks and running a built image.

Everything the engine's API covers goes here; buildx (no API in the SDK for multi-platform builds
with attestations) goes through `adapters.buildx` and the runner.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions

from pipeline.errors import CommandError, EnvironmentProblem


def client(timeout: int = 30) -> docker.DockerClient:
    return docker.from_env(timeout=timeout)


def ping() -> bool:
    """Whether the daemon answers. On the usual unix socket this is a raw `GET /_ping`, so the
    check costs milliseconds instead of importing the SDK's HTTP stack."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        conn = _UnixHTTPConnection(host.removeprefix("unix://"), timeout=3)
        try:
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()
    try:
        return bool(client(timeout=3).ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    containerd_store: bool
    architecture: str


def info() -> EngineInfo:
    try:
        c = client()
        data = c.info()
        version = c.version().get("Version", "?")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EnvironmentProblem(
            "the Docker daemon is not reachable (is dockerd running? `nox -s toolchain` starts it)"
        ) from exc
    driver_status = data.get("DriverStatus") or []
    containerd = any(
        "containerd" in str(v) for pair in driver_status for v in pair
    ) or "containerd" in str(data.get("Driver", ""))
    return EngineInfo(
        server_version=version,
        containerd_store=containerd,
        architecture=str(data.get("Architecture", "?")),
    )


def run_container(image: str, command: list[str], *, platform: str, timeout: int = 120) -> str:
    """Run exactly `command` (argv) in a throwaway container of `image` for `platform`: its first
    word replaces the image's ENTRYPOINT, so an image with an entrypoint runs the same command.
    Returns the output."""
    c = client(timeout=timeout)
    try:
        output = c.containers.run(
            image,
            command[1:],
            entrypoint=command[:1],
            platform=platform,
            remove=True,
            stdout=True,
            stderr=True,
        )
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise CommandError(
            ("docker", "run", image, *command), int(exc.exit_status), "", stderr
        ) from exc
    except docker.errors.APIError as exc:
        raise EnvironmentProblem(
            f"docker could not run {image} for {platform}: {exc.explanation}"
        ) from exc
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)


# One pull at a time from this process. Concurrent pulls that share layers have failed in
# containerd's store (containerd/containerd#1240), the engine's store here, and the platform
# images of one release share layers; the pulls are not what makes a smoke test slow.
_PULLS = threading.Lock()
PULL_ATTEMPTS = 2


def pull(
    ref: str, *, platform: str, auth: dict[str, str] | None = None, timeout: int = 300
) -> None:
    """Pull `repo@digest` for `platform`. The SDK's `images.pull` drops the errors the daemon
    streams and fails later with "No such image"; this reads the stream, so the daemon's own
    words name the fault. A pull that fails is tried once more (a pull is idempotent)."""
    repository, _, digest = ref.partition("@")
    problem = ""
    for _ in range(PULL_ATTEMPTS):
        with _PULLS:
            try:
                stream = client(timeout=timeout).api.pull(
                    repository,
                    tag=digest,
                    platform=platform,
                    auth_config=auth,
                    stream=True,
                    decode=True,
                )
                problem = "; ".join(stream_errors(stream))
            except docker.errors.APIError as exc:
                problem = str(exc.explanation)
        if not problem:
            return
        time.sleep(1)
    raise EnvironmentProblem(f"docker could not pull {ref} for {platform}: {problem}")


def stream_errors(events: Iterable[Mapping[str, object]]) -> Iterator[str]:
    """The error messages of a pull's JSON progress stream (read to its end)."""
    for event in events:
        if event.get("error") or event.get("errorDetail"):
            detail = event.get("errorDetail")
            message = detail.get("message") if isinstance(detail, dict) else None
            yield str(message or event.get("error"))


def pull_and_run(
    ref: str,
    command: list[str],
    *,
    platform: str,
    auth: dict[str, str] | None = None,
    timeout: int = 300,
) -> str:
    """Pull `repo@digest` for `platform` (with registry credentials) and run `command` in it."""
    pull(ref, platform=platform, auth=auth, timeout=timeout)
    return run_container(ref, command, platform=platform, timeout=timeout)
