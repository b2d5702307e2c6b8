"""Docker Hub names served offline: a plain loopback registry that dockerd uses as its
`registry-mirrors` entry, holding `library/debian:bookworm` and `:bookworm-slim` for amd64 and
arm64, so an unmodified `FROM debian:bookworm-slim` builds with no build argument. (Prototype.)

What was verified on Docker 26.1.5 with the containerd image store (see the report of the
dockerhost-bench branch):
- dockerd sends every docker.io pull to the first mirror that has it, at the same repository
  path (`library/debian`); a plain-HTTP mirror on 127.0.0.1 needs no `insecure-registries`
  (127.0.0.0/8 is insecure by default); both `docker pull` and the built-in BuildKit (buildx's
  `docker` driver) use it;
- `registry-mirrors` is reloaded on SIGHUP: `docker info` and `docker pull` see the change at
  once, but the daemon's BuildKit only if it has not resolved any docker.io name since dockerd
  started (after one such build it keeps the hosts it had; only a restart changes that). A
  `docker pull --platform P` of each platform through the mirror works around it: the docker
  driver resolves FROM from the local store first;
- a key absent from daemon.json is left as it was by a reload: removing the mirror needs
  `"registry-mirrors": []`, not a deleted key.

The images follow debuerreotype's recipe where it is data: `debootstrap --variant=minbase` is
mmdebstrap's minbase with its merged-usr hook here (88 packages, 77 MB for -slim amd64); one
layer; `CMD ["bash"]`; `PATH` set; no entrypoint and no labels;
the apt settings `Acquire::Languages "none"` and `Acquire::GzipIndexes "true"`; `-slim` also
excludes (dpkg path-exclude, kept in the image) documentation but copyright files, man pages,
info, groff, lintian overrides and locales but a few. Not reproduced: policy-rc.d, the
docker-clean apt hook, the snapshot.debian.org sources line and debuerreotype's timestamps.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from pipeline import ui
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.sandbox import baseimage
from pipeline.sandbox.registry import RegistryServer, start_registry

REPOSITORY = "library/debian"  # the path a docker.io mirror serves `debian` under
PLATFORMS = ("linux/amd64", "linux/arm64")
DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHANGES = ('CMD ["bash"]', f"ENV {PATH_ENV}")
# Without the merged-usr hook, mmdebstrap 1.3 on bookworm installs `usrmerge`, which pulls in
# perl and four perl libraries (slim 122 MB instead of 77 MB); with it, `usr-is-merged`.
MMDEBSTRAP_ARGS = (
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    '--aptopt=Acquire::Languages "none"',
    '--aptopt=Acquire::GzipIndexes "true"',
)
# debuerreotype's .slimify-excludes / .slimify-includes, as dpkg filters (the last match wins)
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
TAGS: dict[str, tuple[str, ...]] = {  # tag -> dpkg options
    "bookworm": (),
    "bookworm-slim": SLIM_DPKG_OPTIONS,
}


def start_hub_mirror(folder: Path, runner: Runner, *, port: int | None = None) -> RegistryServer:
    """A plain-HTTP, no-auth registry on 127.0.0.1 for docker.io names."""
    return start_registry(folder, runner, tls=False, auth=False, port=port)


def mirror_url(server: RegistryServer) -> str:
    return f"http://{server.host}"


def publish_debian(
    server: RegistryServer,
    runner: Runner,
    *,
    tags: tuple[str, ...] = tuple(TAGS),
    platforms: tuple[str, ...] = PLATFORMS,
) -> dict[str, str]:
    """Build (cached) and push `library/debian:TAG` for every platform; tag -> index digest."""
    client = server.client()
    digests = {}
    for tag in tags:
        digests[tag] = baseimage.ensure_base_image(
            client,
            REPOSITORY,
            tag,
            runner,
            platforms=platforms,
            packages=(),
            dpkg_options=TAGS[tag],
            mmdebstrap_args=MMDEBSTRAP_ARGS,
            changes=CHANGES,
        )
        # ensure_base_image pushed through per-platform tags in the daemon's store; drop them
        # (the image stays under its cache name), so each mirror port leaves no tag behind.
        for platform in platforms:
            per_arch = f"{server.host}/{REPOSITORY}:{tag}-{platform.split('/')[1]}"
            runner.run(["docker", "image", "rm", per_arch], check=False, quiet=True)
    return digests


def add_registry_mirror(url: str, daemon_json: Path = DAEMON_JSON) -> bool:
    """Put `url` first in daemon.json's `registry-mirrors` (idempotent); True if it changed.
    Other keys are kept as they are."""
    config = _read(daemon_json)
    mirrors = _mirrors(config)
    wanted = [url, *(m for m in mirrors if m.rstrip("/") != url.rstrip("/"))]
    if wanted == mirrors:
        return False
    config["registry-mirrors"] = wanted
    _write(daemon_json, config)
    return True


def remove_registry_mirror(url: str, daemon_json: Path = DAEMON_JSON) -> bool:
    """Drop `url` from `registry-mirrors`; True if it changed. An emptied list is written as
    `[]`: a reload leaves a key that is absent from the file as it was."""
    config = _read(daemon_json)
    mirrors = _mirrors(config)
    kept = [m for m in mirrors if m.rstrip("/") != url.rstrip("/")]
    if kept == mirrors:
        return False
    config["registry-mirrors"] = kept
    _write(daemon_json, config)
    return True


def reload_dockerd(pidfile: Path = DOCKERD_PIDFILE) -> int:
    """SIGHUP to the dockerd of `pidfile` (a reload, never a restart); its pid."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot signal the dockerd of {pidfile}: {exc}") from exc
    return pid


def daemon_mirrors(runner: Runner) -> list[str]:
    """The mirrors the daemon `runner` talks to has in force (`docker info`)."""
    shown = runner.run(
        ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"], quiet=True
    ).stdout
    found = json.loads(shown or "null") or []
    return [str(m).rstrip("/") for m in found]


def use_hub_mirror(
    url: str,
    runner: Runner,
    *,
    daemon_json: Path = DAEMON_JSON,
    pidfile: Path = DOCKERD_PIDFILE,
    timeout: float = 15.0,
) -> bool:
    """Make the daemon use `url` as its docker.io mirror: daemon.json, SIGHUP, then wait until
    `docker info` shows it. Idempotent: nothing is written or signalled when it is in force.
    True if the daemon was reloaded."""
    if url.rstrip("/") in daemon_mirrors(runner):
        add_registry_mirror(url, daemon_json)  # in force; make the file say so too
        return False
    add_registry_mirror(url, daemon_json)
    reload_dockerd(pidfile)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if url.rstrip("/") in daemon_mirrors(runner):
            ui.ok(f"dockerd: docker.io mirror {url} (reloaded, no restart)")
            return True
        time.sleep(0.2)
    raise EnvironmentProblem(f"dockerd did not take the mirror {url} within {timeout}s of SIGHUP")


def prefetch(runner: Runner, refs: tuple[str, ...], platforms: tuple[str, ...] = PLATFORMS) -> None:
    """`docker pull --platform P REF` for each: puts the images in the daemon's own store, which
    the docker driver's builds resolve first (for a daemon whose BuildKit kept its old hosts)."""
    for ref in refs:
        for platform in platforms:
            runner.run(["docker", "pull", "--quiet", "--platform", platform, ref], quiet=True)


def _mirrors(config: dict[str, object]) -> list[str]:
    listed = config.get("registry-mirrors")
    return [str(m) for m in listed] if isinstance(listed, list) else []


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
