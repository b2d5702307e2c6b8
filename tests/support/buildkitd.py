"""A real `buildkitd` on loopback, for buildx's `remote` driver, built here from Debian's source.

No `moby/buildkit` image can be pulled and Debian ships no buildkit package, but Debian's
`docker.io` source package (trixie) carries the whole moby/buildkit tree as its `buildkit`
component, `cmd/buildkitd` included (Debian's rules leave its build commented out). Its
dependencies are Debian's `golang-*-dev` packages (the ones docker.io itself is built with) plus
the few modules Debian keeps vendored. `ensure_buildkitd()` builds it once into the cache:

1. a private apt configuration (its own sources, lists and cache; the machine's apt is not
   touched) with `deb` and `deb-src` for trixie from the machine's own Debian mirror;
2. the engine, buildkit and debian tarballs of `docker.io/trixie`, by the URIs and SHA256 that
   `apt-get source --print-uris` lists (the mirror has no .dsc, so `apt-get source` fails);
3. `apt-get -s build-dep docker.io/trixie` against an empty dpkg status says which
   `golang-*` packages (Go 1.24 included) the build needs; `apt-get download` fetches them and
   `dpkg-deb -x` unpacks them into the cache folder (nothing is installed);
4. Debian's patches for the engine and buildkit are applied (they drop hcsshim and jaeger);
5. `go build ./cmd/buildkitd`, then `go build ./cmd/buildctl` in the same tree, in GOPATH mode
   (GO111MODULE=off, CGO_ENABLED=0), as Debian builds dockerd, with the buildkit version the
   engine vendors stamped in. buildctl needs no other source: of what it imports beyond the
   daemon's packages, docker/cli's config is vendored in buildkit, homedir is the engine's, and
   the rest (continuity, docker-credential-helpers, aec, x/crypto's ssh agent) is in the same
   golang-*-dev build dependencies.

The intermediate tree (about 2.3 GB) is deleted afterwards; the binaries stay, with a stamp
(`bin/buildkitd.json`) that names each of them: a cache whose stamp lacks one (one made before
buildctl was built) is built again. `ensure_buildkit_binaries()` gives both paths,
`ensure_buildkitd()` the daemon's. `start_buildkitd(folder, registries)` runs it on
tcp://127.0.0.1:PORT with TLS and client certificates, an OCI (runc) worker with the overlayfs
snapshotter and host networking; `BuildkitServer.create_builder()` makes the
`docker buildx create --driver remote` builder. buildctl is for the image buildx's
`docker-container` driver runs (tests/support/ci_containers.py `buildkit_image`): the driver
talks to buildkitd through `docker exec CONTAINER buildctl dial-stdio`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.sandbox.cache import cache_dir
from pipeline.sandbox.registry import free_port
from pipeline.sandbox.tls import make_loopback_tls
from pipeline.toolchain.bootstrap import _debian_uri
from tests.support.dockerhost import pids_naming, runc_containers, unmount_under

if TYPE_CHECKING:
    from tests.support.bench import Bench

SOURCE = "docker.io"
SUITE = "trixie"
START_TIMEOUT = 30.0
BUILD_TIMEOUT = 1800


# What is built from cmd/ of the buildkit tree, in this order, each into bin/ of the cache folder.
BINARIES = ("buildkitd", "buildctl")


def buildkitd_folder() -> Path:
    return cache_dir() / "buildkitd"


@dataclass(frozen=True)
class BuildkitBinaries:
    """The two binaries of one cached build (same source, same Go, same flags)."""

    buildkitd: Path
    buildctl: Path
    stamp: Path  # bin/buildkitd.json: source, version, and each binary's sha256 and build time

    def digests(self) -> dict[str, str]:
        """Each binary's sha256, as the stamp recorded it when the binary was built."""
        recorded = json.loads(self.stamp.read_text())["binaries"]
        return {name: str(recorded[name]["sha256"]) for name in BINARIES}


def ensure_buildkitd(runner: Runner | None = None) -> Path:
    """The buildkitd binary, built from Debian's docker.io source once and then cached."""
    return ensure_buildkit_binaries(runner).buildkitd


def ensure_buildkit_binaries(runner: Runner | None = None) -> BuildkitBinaries:
    """buildkitd and buildctl, built together from Debian's docker.io source once and cached.

    The cache counts only when its stamp names every binary of BINARIES and each file is there;
    otherwise (a cache of buildkitd alone, an interrupted build) the whole build runs again, so
    the two binaries always come from one source tree."""
    runner = runner or Runner(echo=False)
    folder = buildkitd_folder()
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = folder / "bin"
    found = BuildkitBinaries(
        buildkitd=bin_dir / "buildkitd",
        buildctl=bin_dir / "buildctl",
        stamp=bin_dir / "buildkitd.json",
    )
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cached(bin_dir, found.stamp):
            return found
        started = time.monotonic()
        work = folder / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            apt = _private_apt(work / "apt", runner)
            tree = _unpack_source(apt, work, runner)
            version = _source_version(tree)
            goroot, gocode = _build_dependencies(apt, work, runner)
            buildkit_version = _buildkit_version(tree)
            gopath = _gopath(tree, work)
            built: dict[str, dict[str, object]] = {}
            for name in BINARIES:
                compiling = time.monotonic()
                output = _go_build(
                    gopath, goroot, gocode, work, runner, command=name, version=buildkit_version
                )
                built[name] = {
                    "sha256": _sha256(output),
                    "seconds": round(time.monotonic() - compiling, 1),
                }
                bin_dir.mkdir(exist_ok=True)
                shutil.move(output, bin_dir / name)
            # Written last: a stamp exists only beside a complete set of binaries.
            found.stamp.write_text(
                json.dumps(
                    {
                        "source": f"{SOURCE} {version} ({SUITE})",
                        "version": buildkit_version,
                        "binaries": built,
                        "seconds": round(time.monotonic() - started, 1),
                    },
                    indent=2,
                )
                + "\n"
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return found


def _cached(bin_dir: Path, stamp: Path) -> bool:
    """The stamp names every binary of BINARIES and each of them is a file in `bin_dir`."""
    try:
        recorded = json.loads(stamp.read_text()).get("binaries", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(recorded, dict) and all(
        name in recorded and (bin_dir / name).is_file() for name in BINARIES
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _private_apt(folder: Path, runner: Runner) -> dict[str, str]:
    """An APT_CONFIG of its own: trixie `deb` + `deb-src` from the machine's mirror, its own
    lists, cache and (empty) dpkg status and preferences."""
    for sub in ("lists/partial", "cache/archives/partial", "parts", "preferences.d"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "parts" / "trixie.sources").write_text(
        f"Types: deb deb-src\nURIs: {_debian_uri()}\nSuites: {SUITE}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    (folder / "empty.list").write_text("")
    (folder / "status").write_text("")
    (folder / "apt.conf").write_text(
        f'Dir::Etc::SourceList "{folder / "empty.list"}";\n'
        f'Dir::Etc::SourceParts "{folder / "parts"}";\n'
        f'Dir::Etc::Preferences "{folder / "preferences"}";\n'
        f'Dir::Etc::PreferencesParts "{folder / "preferences.d"}";\n'
        f'Dir::State::Lists "{folder / "lists"}";\n'
        f'Dir::State::status "{folder / "status"}";\n'
        f'Dir::Cache "{folder / "cache"}";\n'
        'APT::Install-Recommends "false";\n'
        'APT::Sandbox::User "root";\n'
    )
    env = {"APT_CONFIG": str(folder / "apt.conf")}
    runner.run(["apt-get", "update", "-q"], env=env, quiet=True, timeout=600)
    return env


def _source_version(tree: Path) -> str:
    """The Debian version of the unpacked source (first line of debian/changelog)."""
    first = (tree / "debian" / "changelog").read_text().splitlines()[0]
    found = re.match(r"\S+ \((\S+)\)", first)
    return found.group(1) if found else "unknown"


def _unpack_source(apt: Mapping[str, str], work: Path, runner: Runner) -> Path:
    """engine/, buildkit/ and debian/ as dpkg-source lays them out, Debian's patches applied
    where they touch the engine or buildkit."""
    download = work / "source"
    download.mkdir()
    # `apt-get source` itself fails here: the mirror answers 404 for the .dsc. The tarballs are
    # there; take their URIs and SHA256 from the (signed) Sources index and fetch each through
    # apt's own downloader, which checks the hash.
    listed = runner.run(
        ["apt-get", "source", "--print-uris", "-q", f"{SOURCE}/{SUITE}"], env=apt, quiet=True
    ).stdout
    wanted = re.findall(r"^'(\S+)' (\S+\.tar\.\w+) \d+ (SHA256:[0-9a-f]{64})$", listed, re.M)
    wanted = [entry for entry in wanted if ".orig-cli." not in entry[1]]
    if len(wanted) != 3:
        raise EnvironmentProblem(f"apt: unexpected source files for {SOURCE}: {wanted}")
    for uri, name, digest in wanted:
        runner.run(
            ["/usr/lib/apt/apt-helper", "download-file", uri, str(download / name), digest],
            env=apt,
            quiet=True,
            timeout=600,
        )
    tree = work / "tree"
    unpacked = work / "unpacked"
    for tarball in sorted(download.glob("*.tar.*")):
        target = unpacked / tarball.name
        target.mkdir(parents=True)
        runner.run(["tar", "-xf", str(tarball), "-C", str(target)], quiet=True)
    # Each tarball has one top folder (sometimes under "./"): find them by what they hold.
    tree.mkdir()
    for name, marker in (
        ("engine", "vendor.mod"),
        ("buildkit", "cmd/buildkitd"),
        ("debian", "rules"),
    ):
        found = sorted(unpacked.glob(f"*/{name}/{marker}")) + sorted(
            unpacked.glob(f"*/*/{name}/{marker}")
        )
        if not found:
            raise EnvironmentProblem(f"{SOURCE} source: no {name}/{marker} in the tarballs")
        top = found[0].parent if "/" not in marker else found[0].parent.parent
        top.rename(tree / name)
    shutil.rmtree(unpacked)
    if not (tree / "buildkit" / "cmd" / "buildkitd").is_dir():
        raise EnvironmentProblem(f"{SOURCE}'s buildkit component has no cmd/buildkitd")
    series = (tree / "debian" / "patches" / "series").read_text().split()
    for patch in series:
        path = tree / "debian" / "patches" / patch
        if not path.is_file():
            continue
        touched = set(re.findall(r"^\+\+\+ [^/\s]+/([^/\s]+)/", path.read_text(), re.MULTILINE))
        if touched & {"engine", "buildkit"}:
            runner.run(["patch", "-p1", "-s", "-i", str(path)], cwd=tree, quiet=True)
    return tree


def _build_dependencies(apt: Mapping[str, str], work: Path, runner: Runner) -> tuple[Path, Path]:
    """The golang-* build dependencies (and Go) unpacked under work/root: (GOROOT, gocode)."""
    simulated = runner.run(
        ["apt-get", "-s", "build-dep", f"{SOURCE}/{SUITE}"], env=apt, quiet=True
    ).stdout
    wanted = sorted(
        f"{name}={version}"
        for name, version in re.findall(r"^Inst (golang-\S+) \((\S+) ", simulated, re.MULTILINE)
    )
    if not wanted:
        raise EnvironmentProblem(f"apt: no golang build dependencies found for {SOURCE}")
    debs = work / "debs"
    debs.mkdir()
    runner.run(["apt-get", "download", "-q", *wanted], env=apt, cwd=debs, quiet=True, timeout=900)
    root = work / "root"
    for deb in sorted(debs.glob("*.deb")):
        runner.run(["dpkg-deb", "-x", str(deb), str(root)], quiet=True)
    goroots = sorted((root / "usr" / "lib").glob("go-1.*"))
    if not goroots:
        raise EnvironmentProblem("apt: the build dependencies brought no Go toolchain")
    return goroots[-1], root / "usr" / "share" / "gocode"


def _buildkit_version(tree: Path) -> str:
    """The buildkit version the engine vendors (what dockerd embeds)."""
    vendor = (tree / "engine" / "vendor.mod").read_text()
    found = re.search(r"^\s*github.com/moby/buildkit (v\S+)", vendor, re.MULTILINE)
    return found.group(1) if found else "v0.0.0+debian"


def _gopath(tree: Path, work: Path) -> Path:
    """A GOPATH holding buildkit and the engine where their import paths say."""
    gopath = work / "gopath"
    (gopath / "src" / "github.com" / "moby").mkdir(parents=True)
    (gopath / "src" / "github.com" / "docker").mkdir(parents=True)
    (tree / "buildkit").rename(gopath / "src" / "github.com" / "moby" / "buildkit")
    (tree / "engine").rename(gopath / "src" / "github.com" / "docker" / "docker")
    return gopath


def _go_build(
    gopath: Path,
    goroot: Path,
    gocode: Path,
    work: Path,
    runner: Runner,
    *,
    command: str,
    version: str,
) -> Path:
    """`go build ./cmd/COMMAND` of buildkit in `gopath`, offline; the binary under `work`. One
    GOCACHE for every command, so the packages they share are compiled once."""
    output = work / "out" / command
    output.parent.mkdir(exist_ok=True)
    runner.run(
        [
            str(goroot / "bin" / "go"),
            "build",
            "-trimpath",
            "-ldflags",
            f"-X github.com/moby/buildkit/version.Version={version} "
            f"-X github.com/moby/buildkit/version.Revision=debian-{SOURCE}",
            "-o",
            str(output),
            f"./cmd/{command}",
        ],
        env={
            "GOROOT": str(goroot),
            "GOPATH": f"{gopath}:{gocode}",
            "GO111MODULE": "off",
            "CGO_ENABLED": "0",
            "GOCACHE": str(work / "gocache"),
            "GOTOOLCHAIN": "local",
            "GOPROXY": "off",
            "GOFLAGS": "",
        },
        cwd=gopath / "src" / "github.com" / "moby" / "buildkit",
        quiet=True,
        timeout=BUILD_TIMEOUT,
    )
    return output


@dataclass
class BuildkitServer:
    """A buildkitd on tcp://127.0.0.1:PORT with TLS (clients need a certificate of its CA)."""

    host: str  # tcp://127.0.0.1:PORT
    folder: Path
    ca_cert: Path
    client_cert: Path
    client_key: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    builders: list[tuple[str, Path | None]] = field(default_factory=list, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def root(self) -> Path:
        return self.folder / "root"

    @property
    def log(self) -> Path:
        return self.folder / "buildkitd.log"

    def create_builder(self, name: str, docker_config: Path | None = None) -> str:
        """`docker buildx create --driver remote` for this server, in `docker_config`."""
        runner = _runner(docker_config)
        runner.run(
            [
                "docker",
                "buildx",
                "create",
                "--name",
                name,
                "--driver",
                "remote",
                "--driver-opt",
                f"cacert={self.ca_cert},cert={self.client_cert},key={self.client_key},"
                "servername=localhost",
                self.host,
            ],
            quiet=True,
        )
        self.builders.append((name, docker_config))
        return name

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """Remove its builders, stop buildkitd and the containers of its build steps, unmount
        and delete its state. Safe to call more than once."""
        for name, docker_config in self.builders:
            _runner(docker_config).run(
                ["docker", "buildx", "rm", "--force", name], check=False, quiet=True
            )
        self.builders.clear()
        runner = Runner(echo=False)
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for root, container in runc_containers(self.folder):
            runner.run(["runc", "--root", str(root), "delete", "--force", container], check=False)
        for pid in pids_naming(self.folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_under(self.folder, runner)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> BuildkitServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_buildkitd(
    folder: Path,
    *,
    registries: Mapping[str, Path | None] | None = None,
    binary: Path | None = None,
) -> BuildkitServer:
    """Start buildkitd on loopback. `registries` maps a registry host to its CA file, or to
    None for a plain-HTTP one (buildkitd does not read /etc/docker/certs.d)."""
    binary = binary or ensure_buildkitd()
    folder.mkdir(parents=True, exist_ok=True)
    tls = make_loopback_tls(folder / "tls", client=True)
    assert tls.client_cert is not None and tls.client_key is not None
    port = free_port()
    server = BuildkitServer(
        host=f"tcp://127.0.0.1:{port}",
        folder=folder,
        ca_cert=tls.ca_cert,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
    )
    lines = [
        f'root = "{server.root}"',
        "[grpc]",
        f'  address = ["{server.host}"]',
        "  [grpc.tls]",
        f'    cert = "{tls.cert}"',
        f'    key = "{tls.key}"',
        f'    ca = "{tls.ca_cert}"',
        "[worker.oci]",
        "  enabled = true",
        '  snapshotter = "overlayfs"',
        # host: RUN steps share this machine's network (no CNI here, no bridge to clash with)
        '  networkMode = "host"',
        "[worker.containerd]",
        "  enabled = false",
    ]
    for registry, ca in (registries or {}).items():
        lines.append(f'[registry."{registry}"]')
        # A loopback registry is taken for plain HTTP unless `http = false` says otherwise.
        lines += ["  http = true"] if ca is None else ["  http = false", f'  ca = ["{ca}"]']
    config = folder / "buildkitd.toml"
    config.write_text("\n".join(lines) + "\n")
    runner = Runner(echo=False)
    server.process = runner.spawn([str(binary), "--config", str(config)], log=server.log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                tail = server.log.read_text(errors="replace")[-600:]
                raise EnvironmentProblem(
                    f"buildkitd exited with {server.process.returncode}: {tail}"
                )
            if _answers(server):
                return server
            time.sleep(0.2)
        raise EnvironmentProblem(f"buildkitd on {server.host} did not answer in {START_TIMEOUT}s")
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="session")
def buildkitd(tmp_path_factory: pytest.TempPathFactory, bench: Bench) -> Iterator[BuildkitServer]:
    """A buildkitd for the session that trusts the bench registries."""
    assert bench.registry.ca_file is not None
    server = start_buildkitd(
        tmp_path_factory.mktemp("buildkitd"),
        registries={bench.registry.host: bench.registry.ca_file, bench.plain.host: None},
    )
    try:
        yield server
    finally:
        server.stop()


def _runner(docker_config: Path | None) -> Runner:
    runner = Runner(echo=False)
    if docker_config is not None:
        runner = runner.with_env(DOCKER_CONFIG=str(docker_config))
    return runner


def _answers(server: BuildkitServer) -> bool:
    """A TLS handshake with a client certificate succeeds (buildkitd speaks gRPC over it)."""
    context = ssl.create_default_context(cafile=str(server.ca_cert))
    context.load_cert_chain(str(server.client_cert), str(server.client_key))
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            return True
    except OSError:
        return False
