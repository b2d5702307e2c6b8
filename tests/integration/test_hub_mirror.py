"""Docker Hub names served offline (pipeline/sandbox/hubmirror.py), proven on a second dockerd
(tests/support/dockerhost.py), so the host daemon's configuration is never touched.

A plain loopback registry holds library/debian:{bookworm,bookworm-slim} for amd64 and arm64
(mmdebstrap, through pipeline/sandbox/baseimage.py); the second daemon is told to use it as its
docker.io mirror by daemon.json + SIGHUP (no restart), idempotently; then an unmodified
`FROM debian:bookworm-slim` builds for both platforms with no build argument, resolved through
the mirror, and the images look like the official ones (CMD bash, PATH, slim without docs).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.runner import Runner
from pipeline.sandbox import hubmirror
from pipeline.sandbox.registry import RegistryServer
from tests.support.bench import Bench
from tests.support.dockerhost import DockerHost, start_docker_host

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKERFILE = """\
FROM debian:bookworm-slim
RUN ["sh", "-c", "uname -m > /built-on"]
"""


@dataclass(frozen=True)
class Mirror:
    server: RegistryServer
    digests: dict[str, str]  # tag -> index digest

    @property
    def url(self) -> str:
        return hubmirror.url(self.server)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, bench: Bench) -> Iterator[Mirror]:
    del bench  # the bench's toolchain check and dockerd first
    runner = Runner(echo=False)
    server = hubmirror.start(tmp_path_factory.mktemp("hub-mirror"), runner)
    try:
        yield Mirror(server, hubmirror.publish(server, runner))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, bench: Bench) -> Iterator[DockerHost]:
    """A daemon of its own: its mirror settings are this module's to change."""
    second = start_docker_host(
        tmp_path_factory.mktemp("hub-host"), docker_config=bench.provisioned.docker_config
    )
    try:
        yield second
    finally:
        second.stop()


def _runner(host: DockerHost) -> Runner:
    return Runner(echo=False).with_env(**host.env())


def test_mirror_serves_both_platforms_under_library_debian(mirror: Mirror) -> None:
    client = mirror.server.client()
    for tag in ("bookworm", "bookworm-slim"):
        index = client.resolve(hubmirror.REPOSITORY, tag)
        assert index is not None and index.is_index
        assert index.digest == mirror.digests[tag]
        platforms = {
            f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in index.document["manifests"]
        }
        assert platforms == set(hubmirror.PLATFORMS)


def test_use_hub_mirror_reloads_once_and_is_idempotent(mirror: Mirror, host: DockerHost) -> None:
    runner = _runner(host)
    pidfile = host.folder / "dockerd.pid"
    assert hubmirror.daemon_mirrors(runner) == []
    hubmirror.use(mirror.url, runner, daemon_json=host.config_file, pidfile=pidfile)
    written = host.config_file.read_text()
    assert json.loads(written)["registry-mirrors"] == [mirror.url]
    assert hubmirror.daemon_mirrors(runner) == [mirror.url]
    # again: nothing written, no reload
    hubmirror.use(mirror.url, runner, daemon_json=host.config_file, pidfile=pidfile)
    assert host.config_file.read_text() == written
    assert host.process is not None and host.process.poll() is None  # reloaded, not restarted
    reloads = host.log.read_text().count("Got signal to reload configuration")
    assert reloads == 1


def test_unmodified_from_debian_builds_through_the_mirror(
    mirror: Mirror, host: DockerHost, tmp_path: Path
) -> None:
    hubmirror.use(
        mirror.url,
        _runner(host),
        daemon_json=host.config_file,
        pidfile=host.folder / "dockerd.pid",
    )
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    dest = tmp_path / "oci"
    built = host.docker(
        "buildx",
        "build",
        "--progress",
        "plain",
        "--platform",
        ",".join(hubmirror.PLATFORMS),
        "--provenance=false",
        "--output",
        f"type=oci,dest={dest},tar=false",
        str(tmp_path),
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    pattern = r"FROM docker\.io/library/debian:bookworm-slim@(sha256:\w+)"
    resolved = set(re.findall(pattern, built.stderr))
    assert resolved == {mirror.digests["bookworm-slim"]}, built.stderr[-2000:]
    for platform, config in _configs(dest).items():
        assert config["config"]["Cmd"] == ["bash"], platform
        assert PATH_ENV in config["config"]["Env"], platform
        assert not config["config"].get("Entrypoint"), platform
        assert not config["config"].get("Labels"), platform


def test_slim_drops_documentation_and_keeps_copyrights(mirror: Mirror, host: DockerHost) -> None:
    """-slim as debuerreotype makes it, but for /usr/share/info/dir: install-info writes it after
    dpkg's filters, and debuerreotype deletes it with a find; mmdebstrap has no data-only hook
    for that, so it stays (one file)."""
    hubmirror.use(
        mirror.url,
        _runner(host),
        daemon_json=host.config_file,
        pidfile=host.folder / "dockerd.pid",
    )
    count = (
        "printf '%s %s %s\\n' "
        "$(find /usr/share/doc -type f ! -name copyright | wc -l) "
        "$(find /usr/share/doc -name copyright | wc -l) "
        "$(find /usr/share/man /usr/share/info -type f ! -path /usr/share/info/dir | wc -l)"
    )
    seen = {}
    for tag in ("bookworm", "bookworm-slim"):
        pulled = host.docker("pull", "--quiet", f"debian:{tag}")
        assert pulled.returncode == 0, pulled.stderr
        ran = host.docker("run", "--rm", f"debian:{tag}", "sh", "-c", count)
        assert ran.returncode == 0, ran.stderr
        seen[tag] = tuple(int(n) for n in ran.stdout.split())
    print(f"docs, copyrights, man+info files: {seen}")
    docs, copyrights, manuals = seen["bookworm-slim"]
    assert docs == 0 and manuals == 0
    assert copyrights == seen["bookworm"][1] > 0
    assert seen["bookworm"][0] > 0


def test_remove_mirror_needs_an_empty_list(mirror: Mirror, host: DockerHost) -> None:
    runner = _runner(host)
    pidfile = host.folder / "dockerd.pid"
    hubmirror.use(mirror.url, runner, daemon_json=host.config_file, pidfile=pidfile)
    assert hubmirror.set_mirror(mirror.url, present=False, daemon_json=host.config_file)
    assert json.loads(host.config_file.read_text())["registry-mirrors"] == []
    hubmirror.reload_dockerd(pidfile)
    for _ in range(50):
        if hubmirror.daemon_mirrors(runner) == []:
            break
        time.sleep(0.2)
    assert hubmirror.daemon_mirrors(runner) == []
    assert not hubmirror.set_mirror(mirror.url, present=False, daemon_json=host.config_file)


def _configs(layout: Path) -> dict[str, dict[str, Any]]:
    def blob(digest: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text()
        )
        return data

    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    configs = {}
    for entry in blob(top["digest"])["manifests"]:
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        configs[platform] = blob(blob(entry["digest"])["config"]["digest"])
    return configs
