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
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bench import Bench
from tests.support.dockerhost import (
    DockerHost,
    pids_naming,
    runc_containers,
    start_docker_host,
)
from tests.support.ocibuild import (
    EPOCH,
    PLATFORMS,
    BuildWatch,
    Layout,
    build_context,
    docker,
    oci_build_argv,
)

FROZEN_FOR = 15  # seconds a SIGSTOPped host is watched before it is stopped


def _build_both(
    bench: Bench, host: DockerHost, folder: Path, *, rewrite: bool
) -> tuple[Layout, Layout, float, float]:
    """The same build on the second host (through its context) and on the host daemon."""
    context = build_context(folder / "context")
    env = {**bench.env(), "SOURCE_DATE_EPOCH": EPOCH}
    timings = []
    layouts = []
    for label, prefix in (
        ("second", ["--context", host.name]),
        ("host", []),
    ):
        dest = folder / f"{label}-oci"
        argv = oci_build_argv(bench.base_image, dest, rewrite=rewrite, platforms=PLATFORMS)
        if prefix:
            argv = [*prefix, *argv[:2], "--builder", host.name, *argv[2:]]
        started = time.monotonic()
        result = docker(argv, env, context)
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
    listed = docker(["buildx", "ls"], bench.env(), tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert docker_host.name in listed.stdout
    context = build_context(tmp_path / "context")
    argv = oci_build_argv(bench.base_image, tmp_path / "oci", rewrite=True, platforms=PLATFORMS[:1])
    refused = docker([*argv[:2], "--builder", docker_host.name, *argv[2:]], bench.env(), context)
    assert refused.returncode != 0
    name = docker_host.name
    expected = f'use `docker --context={name} buildx` to switch to context "{name}"'
    assert expected in refused.stderr, refused.stderr
    via_env = docker(
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
    context = build_context(tmp_path / "context")
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
        here = docker(["image", "inspect", name], bench.env(), tmp_path)
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


@pytest.mark.parametrize("fault", ["stop", "kill", "freeze"])
def test_a_host_lost_mid_build_fails_the_build(bench: Bench, tmp_path: Path, fault: str) -> None:
    """stop: SIGTERM (stop()); kill: SIGKILL of dockerd (a crash); freeze: SIGSTOP (a hung
    host, connections open), then stop(). What buildx prints is what the product's error
    boundary will see."""
    host = start_docker_host(tmp_path / "host", docker_config=bench.provisioned.docker_config)
    watch = BuildWatch(
        ["--context", host.name], bench.base_image, bench.env(), tmp_path / "context"
    )
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
    assert pids_naming(host.folder) == []
    assert runc_containers(host.folder, host.exec_root) == []
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
