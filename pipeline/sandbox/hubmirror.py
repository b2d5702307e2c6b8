"""Docker Hub names on the sandbox: `debian:bookworm` and `debian:bookworm-slim` for amd64 and
arm64, made here with mmdebstrap and served by a plain loopback registry that dockerd uses as its
`registry-mirrors` entry, so an unmodified `FROM debian:bookworm-slim` builds offline with no
build argument.

These are locally built Debian images STANDING IN for the official ones, for the sandbox only
(used when a release goes to the built-in `local` registry and Docker Hub cannot be reached);
their digests are not Docker Hub's. They follow debuerreotype's recipe where it is data:
minbase, one layer, `CMD ["bash"]`, `PATH` set, apt without translations and with gzipped
indexes; `-slim` also leaves out documentation (copyright files kept), man pages, info, groff,
lintian overrides and most locales, and keeps those dpkg filters in the image.

How dockerd and its BuildKit take the mirror (Docker 26 with the containerd image store, as found
on the dockerhost-bench branch): `registry-mirrors` is reloaded on SIGHUP (never a restart); a
plain-HTTP mirror on 127.0.0.1 needs no `insecure-registries`; `docker pull` uses it at once, but
the daemon's BuildKit only if it has not resolved a docker.io name since dockerd started. So the
images a build needs are also pulled once per platform through the mirror into the daemon's own
store, which builds with the docker driver resolve first. A key absent from daemon.json is left
as it was by a reload: the mirror is removed by writing the list without it (`[]` when empty).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from pipeline import ui
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.sandbox import baseimage
from pipeline.sandbox.registry import RegistryServer, start_registry

REPOSITORY = "library/debian"  # where a docker.io mirror serves `debian`
PLATFORMS = ("linux/amd64", "linux/arm64")
DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
LOCAL_SOCKETS = ("", "unix:///var/run/docker.sock", "unix:///run/docker.sock")
CHANGES = ('CMD ["bash"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
APT_OPTIONS = ('Acquire::Languages "none"', 'Acquire::GzipIndexes "true"')
# debuerreotype's .slimify-excludes and -includes as dpkg filters (the last match wins).
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/lintian/overrides/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/all_languages",
    "path-include=/usr/share/locale/currency/*",
    "path-include=/usr/share/locale/l10n/*",
    "path-include=/usr/share/locale/languages",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/man/*",
)
TAGS: dict[str, tuple[str, ...]] = {"bookworm": (), "bookworm-slim": SLIM_DPKG_OPTIONS}
HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


def hub_tag(reference: str) -> str | None:
    """The tag of `debian` a FROM names when the sandbox can make it (`debian:bookworm-slim`,
    `docker.io/library/debian:bookworm`), else None (another image, or pinned by digest: a
    digest of Docker Hub's own image cannot be made here)."""
    name = reference.strip()
    if "@" in name:
        return None
    for prefix in HUB_PREFIXES:
        name = name.removeprefix(prefix)
    repository, _, tag = name.partition(":")
    if repository not in ("debian", REPOSITORY):
        return None
    return tag if tag in TAGS else None


def hub_tags(references: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({tag for ref in references if (tag := hub_tag(ref)) is not None}))


def hub_name(tag: str) -> str:
    return f"debian:{tag}"


# -- the mirror registry ------------------------------------------------------------------------


def running(folder: Path) -> RegistryServer | None:
    state = folder / "registry.json"
    if not state.is_file():
        return None
    server = RegistryServer.load(state, None)
    return server if server.alive() else None


def start(folder: Path, runner: Runner) -> RegistryServer:
    """The mirror of `folder` (plain HTTP, no auth, 127.0.0.1), started unless it runs; it keeps
    its last port when free, so the daemon's mirror entry stays the same."""
    server = running(folder)
    if server is not None:
        return server
    port = _previous_port(folder)
    server = start_registry(folder / "registry", runner, tls=False, auth=False, port=port)
    server.save(folder / "registry.json")
    ui.ok(f"Docker Hub stand-in mirror started on http://{server.host} (data: {folder})")
    return server


def _previous_port(folder: Path) -> int | None:
    state = folder / "registry.json"
    if not state.is_file():
        return None
    port = int(json.loads(state.read_text())["host"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def url(server: RegistryServer) -> str:
    return f"http://{server.host}"


def publish(
    server: RegistryServer,
    runner: Runner,
    tags: Iterable[str] = tuple(TAGS),
    platforms: tuple[str, ...] = PLATFORMS,
) -> dict[str, str]:
    """Make (root filesystems cached) and push `library/debian:TAG` for every platform as one
    index; tag -> index digest. A tag already there from the same recipe is not pushed again."""
    client = server.client()
    return {
        tag: baseimage.ensure_base_image(
            client,
            REPOSITORY,
            tag,
            runner,
            platforms=platforms,
            packages=(),
            dpkg_options=TAGS[tag],
            apt_options=APT_OPTIONS,
            changes=CHANGES,
        )
        for tag in tags
    }


# -- the daemon ---------------------------------------------------------------------------------


def local_daemon(environ: dict[str, str]) -> bool:
    """Whether the docker CLI talks to this machine's dockerd (whose daemon.json we can edit)."""
    return environ.get("DOCKER_HOST", "") in LOCAL_SOCKETS and not environ.get("DOCKER_CONTEXT")


def daemon_mirrors(runner: Runner) -> list[str]:
    shown = runner.run(
        ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"], quiet=True
    ).stdout
    return [str(m).rstrip("/") for m in json.loads(shown or "null") or []]


def set_mirror(mirror: str, *, present: bool, daemon_json: Path = DAEMON_JSON) -> bool:
    """Put `mirror` first in daemon.json's `registry-mirrors` (or take it out); other keys are
    kept. True when the file changed."""
    mirror = mirror.rstrip("/")
    config = _read(daemon_json)
    listed = config.get("registry-mirrors")
    mirrors = [str(m) for m in listed] if isinstance(listed, list) else []
    others = [m for m in mirrors if m.rstrip("/") != mirror]
    wanted = [mirror, *others] if present else others
    if wanted == mirrors and (present or "registry-mirrors" in config):
        return False
    config["registry-mirrors"] = wanted
    _write(daemon_json, config)
    return True


def reload_dockerd(pidfile: Path = DOCKERD_PIDFILE) -> None:
    """SIGHUP: dockerd reloads daemon.json. Never a restart."""
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot reload dockerd ({pidfile}): {exc}") from exc


def use(
    mirror: str,
    runner: Runner,
    *,
    daemon_json: Path = DAEMON_JSON,
    pidfile: Path = DOCKERD_PIDFILE,
    timeout: float = 15.0,
) -> None:
    """Make dockerd use `mirror` for docker.io: daemon.json, SIGHUP, wait for `docker info`.
    Nothing is written or signalled when it is already in force."""
    if mirror.rstrip("/") in daemon_mirrors(runner):
        return
    try:
        set_mirror(mirror, present=True, daemon_json=daemon_json)
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot write {daemon_json} (needs root) to serve Docker Hub names offline; pass "
            "the base image as a build argument instead (Image.base_image_arg)"
        ) from exc
    reload_dockerd(pidfile)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mirror.rstrip("/") in daemon_mirrors(runner):
            ui.ok(f"dockerd: Docker Hub names from {mirror} (daemon.json reloaded, no restart)")
            return
        time.sleep(0.2)
    raise EnvironmentProblem(f"dockerd did not take the mirror {mirror} within {timeout:.0f}s")


def forget(
    mirror: str, *, daemon_json: Path = DAEMON_JSON, pidfile: Path = DOCKERD_PIDFILE
) -> None:
    """Take `mirror` out of daemon.json and reload, when it is there."""
    if set_mirror(mirror, present=False, daemon_json=daemon_json):
        reload_dockerd(pidfile)


def prefetch(runner: Runner, tags: Iterable[str], platforms: Iterable[str]) -> None:
    """`docker pull --platform P debian:TAG` through the mirror for each: the daemon's store
    then holds them, and a build resolves FROM there whatever hosts its BuildKit kept."""
    for tag in tags:
        for platform in platforms:
            runner.run(
                ["docker", "pull", "--quiet", "--platform", platform, hub_name(tag)], quiet=True
            )


def _read(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    text = path.read_text().strip()
    data = json.loads(text) if text else {}
    if not isinstance(data, dict):
        raise EnvironmentProblem(f"{path}: not a JSON object")
    return data


def _write(path: Path, config: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(config, indent=2) + "\n")
    if path.exists():
        partial.chmod(path.stat().st_mode & 0o7777)
    partial.replace(path)
