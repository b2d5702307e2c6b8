"""A second, real Docker host (tests/support/dockerhost.py), proven with the real tools.

- buildx builds both platforms on it through its docker context, to an OCI layout with
  SOURCE_DATE_EPOCH and rewrite-timestamp; the same build on the host daemon gives byte-identical
  per-platform manifests (and index). Without rewrite-timestamp the RUN layer (file mtimes)
  differs between the hosts, and with it the config and manifest;
- what it builds lands in its own image store, not the host daemon's; it pulls from the bench's
  TLS registry, so it trusts /etc/docker/certs.d as the host daemon does;
- stopping it in the middle of a build makes the build fail, promptly, and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Bench
from tests.support.dockerhost import (
    DockerHost,
    _pids_naming,
    _runc_containers,
    start_docker_host,
)

PLATFORMS = ("linux/amd64", "linux/arm64")
EPOCH = "1700000000"
SESSION = secrets.token_hex(8)
FROZEN_FOR = 15  # seconds a SIGSTOPped host is watched before it is stopped
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN uname -m > /built-on
COPY hello.txt /hello.txt
CMD ["cat", "/built-on"]
"""


@dataclass(frozen=True)
class Layout:
    """An OCI layout buildx wrote, read as JSON: index digest and per-platform documents."""

    index_digest: str
    manifests: dict[str, str]  # platform -> manifest digest
    configs: dict[str, str]  # platform -> config digest
    layers: dict[str, list[str]]  # platform -> layer digests
    build_ref: str  # buildx.build.ref: builder/node/ref

    @classmethod
    def read(cls, folder: Path, metadata: Path) -> Layout:
        def blob(digest: str) -> dict[str, Any]:
            data: dict[str, Any] = json.loads(
                (folder / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text()
            )
            return data

        top = json.loads((folder / "index.json").read_text())["manifests"]
        assert len(top) == 1, top
        index = blob(top[0]["digest"])
        manifests, configs, layers = {}, {}, {}
        for entry in index["manifests"]:
            platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            manifest = blob(entry["digest"])
            manifests[platform] = entry["digest"]
            configs[platform] = manifest["config"]["digest"]
            layers[platform] = [layer["digest"] for layer in manifest["layers"]]
        meta = json.loads(metadata.read_text())
        assert meta["containerimage.digest"] == top[0]["digest"]
        return cls(top[0]["digest"], manifests, configs, layers, meta["buildx.build.ref"])


def _context(folder: Path) -> Path:
    """The build context. hello.txt is new to every session (a cached COPY layer of another
    session's file would carry that file's mtime) and its mtime is fixed at EPOCH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    hello = folder / "hello.txt"
    hello.write_text(f"hello from the build context {SESSION}\n")
    os.utime(hello, (int(EPOCH), int(EPOCH)))
    return folder


def _build_argv(base: str, dest: Path, *, rewrite: bool, platforms: tuple[str, ...]) -> list[str]:
    output = f"type=oci,dest={dest},tar=false" + (",rewrite-timestamp=true" if rewrite else "")
    return [
        "buildx",
        "build",
        "--platform",
        ",".join(platforms),
        "--build-arg",
        f"BASE={base}",
        "--provenance=false",
        "--output",
        output,
        "--metadata-file",
        f"{dest}.json",
        ".",
    ]


def _docker(
    argv: list[str], env: Mapping[str, str], cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *argv],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _build_both(
    bench: Bench, host: DockerHost, folder: Path, *, rewrite: bool
) -> tuple[Layout, Layout, float, float]:
    """The same build on the second host (through its context) and on the host daemon."""
    context = _context(folder / "context")
    env = {**bench.env(), "SOURCE_DATE_EPOCH": EPOCH}
    timings = []
    layouts = []
    for label, prefix in (
        ("second", ["--context", host.name]),
        ("host", []),
    ):
        dest = folder / f"{label}-oci"
        argv = _build_argv(bench.base_image, dest, rewrite=rewrite, platforms=PLATFORMS)
        if prefix:
            argv = [*prefix, *argv[:2], "--builder", host.name, *argv[2:]]
        started = time.monotonic()
        result = _docker(argv, env, context)
        timings.append(time.monotonic() - started)
        assert result.returncode == 0, f"{label}: {result.stderr[-3000:]}"
        layouts.append(Layout.read(dest, Path(f"{dest}.json")))
    return layouts[0], layouts[1], timings[0], timings[1]


def test_builder_flag_alone_is_refused_for_a_context_builder(
    bench: Bench, docker_host: DockerHost, tmp_path: Path
) -> None:
    """buildx lists the context as a `docker` builder, yet `--builder NAME` from another current
    context is refused (buildx 0.13 Builder.Validate): the docker driver builds only on the
    current context's daemon. The product must select such an endpoint with
    `docker --context NAME` (or DOCKER_CONTEXT, or DOCKER_HOST and the TLS variables)."""
    listed = _docker(["buildx", "ls"], bench.env(), tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert docker_host.name in listed.stdout
    context = _context(tmp_path / "context")
    argv = _build_argv(bench.base_image, tmp_path / "oci", rewrite=True, platforms=PLATFORMS[:1])
    refused = _docker([*argv[:2], "--builder", docker_host.name, *argv[2:]], bench.env(), context)
    assert refused.returncode != 0
    name = docker_host.name
    expected = f'use `docker --context={name} buildx` to switch to context "{name}"'
    assert expected in refused.stderr, refused.stderr
    via_env = _docker(
        ["buildx", "inspect", "--builder", docker_host.name],
        {**bench.env(), "DOCKER_CONTEXT": docker_host.name},
        tmp_path,
    )
    assert via_env.returncode == 0, via_env.stderr
    fields = [line.split() for line in via_env.stdout.splitlines()]
    assert ["Driver:", "docker"] in fields, via_env.stdout
    assert ["Endpoint:", docker_host.name] in fields, via_env.stdout


def test_reproducible_digests_across_hosts(
    bench: Bench, docker_host: DockerHost, tmp_path: Path
) -> None:
    second, host, t_second, t_host = _build_both(bench, docker_host, tmp_path, rewrite=True)
    print(f"second host build {t_second:.1f}s, host daemon build {t_host:.1f}s")
    print(f"second: {second}\nhost:   {host}")
    assert second.build_ref.startswith(f"{docker_host.name}/{docker_host.name}/")
    assert host.build_ref.startswith("default/default/")
    assert set(second.manifests) == set(PLATFORMS)
    # byte-identical per-platform manifests, hence the same configs, layers and index
    assert second.manifests == host.manifests
    assert second.configs == host.configs
    assert second.layers == host.layers
    assert second.index_digest == host.index_digest


def test_without_rewrite_timestamp_the_run_layer_differs(
    bench: Bench, docker_host: DockerHost, tmp_path: Path
) -> None:
    """SOURCE_DATE_EPOCH alone fixes the config's dates, not the mtimes of files a RUN step
    writes: the base layer and the COPY layer (its file's mtime is the context's) still match
    across hosts, the RUN layer does not, nor the config (its diff_ids) and the manifest."""
    second, host, _, _ = _build_both(bench, docker_host, tmp_path, rewrite=False)
    for platform in PLATFORMS:
        base_s, run_s, copy_s = second.layers[platform]
        base_h, run_h, copy_h = host.layers[platform]
        assert base_s == base_h
        assert copy_s == copy_h
        assert run_s != run_h, "the RUN layer matched without rewrite-timestamp"
        assert second.configs[platform] != host.configs[platform]
        assert second.manifests[platform] != host.manifests[platform]


def test_image_lands_in_the_second_hosts_store_only(
    bench: Bench, docker_host: DockerHost, tmp_path: Path
) -> None:
    name = f"pipeline-dh-test/probe:{secrets.token_hex(4)}"
    context = _context(tmp_path / "context")
    built = docker_host.docker(
        "buildx",
        "build",
        "--platform",
        ",".join(PLATFORMS),
        "--build-arg",
        f"BASE={bench.base_image}",
        "--provenance=false",
        "--output",
        f"type=image,name={name}",
        ".",
        env=bench.env(),
        cwd=context,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        there = docker_host.docker("image", "inspect", "--format", "{{.Id}}", name)
        assert there.returncode == 0, there.stderr
        here = _docker(["image", "inspect", name], bench.env(), tmp_path)
        assert here.returncode != 0
        assert "No such image" in here.stderr
        for platform, arch in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
            ran = docker_host.docker("run", "--rm", "--platform", platform, name)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.strip() == arch
        # The daemon itself (not only its builder) trusts the bench's TLS registry: certs.d
        # under /etc/docker is read by both daemons.
        pulled = docker_host.docker("pull", "--quiet", bench.base_image, env=bench.env())
        assert pulled.returncode == 0, pulled.stderr
        info = docker_host.docker("info", "--format", "{{json .}}")
        facts = json.loads(info.stdout)
        assert facts["DockerRootDir"] == str(docker_host.data_root)
        assert ["driver-type", "io.containerd.snapshotter.v1"] in facts["DriverStatus"]
    finally:
        docker_host.docker("image", "rm", name)


class BuildWatch:
    """`docker --context HOST buildx build` of a step that sleeps, its output collected."""

    def __init__(self, bench: Bench, host: DockerHost, folder: Path) -> None:
        folder.mkdir()
        (folder / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN sleep 1193\n")
        self.lines: list[str] = []
        self.running = threading.Event()
        self.proc = subprocess.Popen(
            [
                "docker",
                "--context",
                host.name,
                "buildx",
                "build",
                "--progress",
                "plain",
                "--platform",
                "linux/amd64",
                "--build-arg",
                f"BASE={bench.base_image}",
                "--output",
                "type=cacheonly",
                ".",
            ],
            env=bench.env(),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "RUN sleep 1193" in line:
                self.running.set()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith("ERROR:")]


@pytest.mark.parametrize("fault", ["stop", "kill", "freeze"])
def test_a_host_lost_mid_build_fails_the_build(bench: Bench, tmp_path: Path, fault: str) -> None:
    """stop: SIGTERM (stop()); kill: SIGKILL of dockerd (a crash); freeze: SIGSTOP (a hung
    host, connections open), then stop(). What buildx prints is what the product's error
    boundary will see."""
    host = start_docker_host(tmp_path / "host", docker_config=bench.provisioned.docker_config)
    watch = BuildWatch(bench, host, tmp_path / "context")
    try:
        assert watch.running.wait(120), "\n".join(watch.lines[-30:])
        time.sleep(1)  # the step's process is up
        started = time.monotonic()
        if fault == "kill":
            host.send_signal(signal.SIGKILL)
        elif fault == "freeze":
            host.send_signal(signal.SIGSTOP)
            with pytest.raises(subprocess.TimeoutExpired):
                watch.proc.wait(timeout=FROZEN_FOR)
        if fault != "kill":
            host.stop()
        code = watch.proc.wait(timeout=60)
        failed_after = time.monotonic() - started
        host.stop()
    finally:
        host.stop()
        watch.close()
    tail = "\n".join(watch.lines[-6:])
    print(f"{fault}: buildx exited {code} {failed_after:.1f}s after the fault\n{tail}")
    assert code == 1, tail
    assert failed_after < (FROZEN_FOR + 30 if fault == "freeze" else 30), tail
    assert len(watch.errors) == 1, tail
    assert "Unavailable" in watch.errors[0], tail
    assert "error reading from server: EOF" in watch.errors[0], tail
    # nothing of the host is left: processes, build-step containers, bridge
    assert _pids_naming(host.folder) == []
    assert _runc_containers(host.folder, host.exec_root) == []
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 1193$"], capture_output=True, check=False)
    assert sleepers.stdout == b"", sleepers.stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True)
    assert host.bridge not in links.stdout


@pytest.fixture(autouse=True)
def _host_bridge_intact() -> Iterator[None]:
    """No test here may disturb the host daemon's docker0 (a --bridge none dockerd deletes it)."""
    yield
    shown = subprocess.run(
        ["ip", "-br", "link", "show", "docker0"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, "docker0 is gone: the host daemon's containers have no bridge"
