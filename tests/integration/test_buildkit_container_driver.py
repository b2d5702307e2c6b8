"""buildx's `docker-container` driver as docker/setup-buildx-action (v4.3.0) sets up its default
builder, on a second Docker host, with our BuildKit image in place of
moby/buildkit:buildx-stable-1 (which cannot be pulled here): the one thing added is
`--driver-opt image=IMAGE`, what a user without Docker Hub passes through the action's
`driver-opts`.

The client reaches the host only through DOCKER_HOST and the TLS variables, so the default
context holds TLS data, which `buildx create` refuses without an endpoint; the action then makes
a `buildx-UUID` docker context of the environment and names it as the endpoint, and removes it
when done. The image (tests/support/ci_containers.py `buildkit_image`) is pulled by the second
dockerd from a registry on the host's outward address, which it trusts through
/etc/docker/certs.d; the same registry serves the base image the build starts FROM, since the
builder container sits on the second host's bridge, where the host's loopback (the bench
registry) is out of reach. buildkitd trusts that registry's CA through `buildx create --config`.

Proven here: the builder boots (`buildctl debug workers`, then `buildctl dial-stdio` for every
connection) and reports our buildkit; it builds linux/amd64 and linux/arm64 (a RUN step on each,
arm64 through the kernel's binfmt handler) to an OCI layout; `buildx rm` removes its container
and state volume, and nothing of it is left running.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.adapters.runner import Runner
from pipeline.sandbox.local import Provisioned, provision
from pipeline.sandbox.registry import RegistryServer, untrust_in_docker
from tests.support.ci_containers import bridge_registry, buildkit_image, push_by_digest
from tests.support.dockerhost import DockerHost, runc_containers
from tests.support.github_container import BUILDKITD_FLAGS, setup_buildx_create
from tests.support.ocibuild import PLATFORMS, Layout, build_context, docker, oci_build_argv

ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


@dataclass(frozen=True)
class Site:
    """The registry containers reach, provisioned with the base image, and our image in it."""

    registry: RegistryServer
    provisioned: Provisioned
    image: str  # host/pipeline/buildkit@sha256:…


@pytest.fixture(scope="module")
def site(runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("buildkit-container-driver")
    registry = bridge_registry(work / "registry", runner)
    pushed_tag = f"{registry.host}/pipeline/buildkit:ci"
    try:
        provisioned = provision(registry, work, runner, base=True, trivy_db=False)
        started = time.monotonic()
        local = buildkit_image(runner)
        print(f"buildkit image {local}: {time.monotonic() - started:.1f}s")
        image = push_by_digest(
            local, registry, "pipeline/buildkit", runner, provisioned.docker_config
        )
        yield Site(registry, provisioned, image)
    finally:
        # push_by_digest tagged the host's image with the registry's name: only that tag goes.
        runner.run(["docker", "image", "rm", pushed_tag], check=False, quiet=True)
        registry.stop()
        untrust_in_docker(registry)


def _client_env(site: Site, host: DockerHost) -> dict[str, str]:
    """A CI job's docker client: the second host through DOCKER_HOST and the TLS variables only,
    a docker config of its own (the registry's login; the builders buildx records)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DOCKER_", "BUILDX_"))
    }
    return {**env, "DOCKER_CONFIG": str(site.provisioned.docker_config), **host.env()}


def _ok(argv: list[str], env: Mapping[str, str], cwd: Path, timeout: int = 600) -> str:
    done = docker(argv, env, cwd, timeout=timeout)
    assert done.returncode == 0, f"docker {argv}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def _default_context_has_tls(env: Mapping[str, str], cwd: Path) -> bool:
    """The action's test (src/main.ts) for making a temporary context."""
    (info,) = json.loads(_ok(["context", "inspect", "--format=json", "default"], env, cwd))
    endpoints = info.get("Endpoints") or {}
    material = info.get("TLSMaterial") or {}
    has_data = bool(endpoints) and next(iter(endpoints.values())).get("TLSData") is not None
    return has_data or (bool(material) and len(next(iter(material.values()))) > 0)


def _run_file(layer: Path, name: str) -> str:
    """The text of `name` in a gzip layer tarball."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.read_bytes()))) as archive:
        member = archive.extractfile(name)
        assert member is not None, f"{name} is not a file in {layer}"
        return member.read().decode().strip()


def _pids_in_cgroup_of(container_id: str) -> list[int]:
    """Processes whose cgroup names the container (buildkitd, its runc steps, docker-init)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if container_id in (entry / "cgroup").read_text():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_setup_buildx_action_default_builder_builds_both_platforms(
    site: Site, docker_host: DockerHost, tmp_path: Path
) -> None:
    env = _client_env(site, docker_host)
    builder = f"builder-{uuid.uuid4()}"
    container = f"buildx_buildkit_{builder}0"
    config = tmp_path / "buildkitd.toml"
    config.write_text(f'[registry."{site.registry.host}"]\n  ca = ["{site.registry.ca_file}"]\n')
    temp_context = ""
    timings: dict[str, float] = {}
    try:
        assert _default_context_has_tls(env, tmp_path), "DOCKER_CERT_PATH gave no TLS data"
        temp_context = f"buildx-{uuid.uuid4()}"
        _ok(["context", "create", temp_context], env, tmp_path)
        started = time.monotonic()
        create = setup_buildx_create(builder, site.image, config=str(config), endpoint=temp_context)
        _ok(create[1:], env, tmp_path)
        shown = _ok(["buildx", "inspect", "--bootstrap", "--builder", builder], env, tmp_path)
        timings["create and bootstrap"] = time.monotonic() - started
        facts = dict(re.findall(r"^([A-Za-z][A-Za-z ]*):\s+(.*)$", shown, re.MULTILINE))
        assert facts["Driver"] == "docker-container", shown
        assert facts["Status"] == "running", shown
        assert facts["BuildKit version"] == "v0.13.2", shown
        assert facts["Endpoint"] == temp_context, shown
        for platform in PLATFORMS:
            assert platform in facts["Platforms"], shown
        # The container runs our image, on the second host (not the host daemon).
        inspected = docker_host.docker("container", "inspect", container)
        assert inspected.returncode == 0, inspected.stderr
        (details,) = json.loads(inspected.stdout)
        print(f"builder container {details['Id']} on {docker_host.name}")
        assert details["Config"]["Image"] == site.image
        assert details["Config"]["Entrypoint"] == ["buildkitd"]
        assert details["Config"]["Cmd"] == [
            "--config",
            "/etc/buildkit/buildkitd.toml",
            *BUILDKITD_FLAGS.split(),
        ]
        assert {mount["Destination"] for mount in details["Mounts"]} == {"/var/lib/buildkit"}

        dest = tmp_path / "oci"
        assert site.provisioned.base_image is not None
        argv = oci_build_argv(site.provisioned.base_image, dest, rewrite=False, platforms=PLATFORMS)
        started = time.monotonic()
        _ok([*argv[:2], "--builder", builder, *argv[2:]], env, build_context(tmp_path / "ctx"))
        timings["build"] = time.monotonic() - started
        layout = Layout.read(dest, Path(f"{dest}.json"))
        assert set(layout.manifests) == set(PLATFORMS), layout
        assert layout.build_ref.startswith(f"{builder}/{builder}0/"), layout.build_ref
        for platform, layers in layout.layers.items():
            run_layer = dest / "blobs" / "sha256" / layers[1].removeprefix("sha256:")
            assert _run_file(run_layer, "built-on") == ARCH[platform]

        # The action's post step: `buildx rm NAME`, then the temporary context goes.
        started = time.monotonic()
        _ok(["buildx", "rm", builder], env, tmp_path)
        timings["rm"] = time.monotonic() - started
        _ok(["context", "rm", "--force", temp_context], env, tmp_path)
        print(", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()))
        left = docker_host.docker("ps", "--all", "--quiet", "--filter", f"name={container}")
        assert left.returncode == 0, left.stderr
        assert left.stdout.strip() == "", f"the builder's container is left: {left.stdout}"
        volumes = docker_host.docker("volume", "ls", "--quiet", "--filter", f"name={container}")
        assert volumes.returncode == 0, volumes.stderr
        assert volumes.stdout.strip() == "", f"its state volume is left: {volumes.stdout}"
        assert details["Id"] not in {
            name for _, name in runc_containers(docker_host.folder, docker_host.exec_root)
        }
        assert _pids_in_cgroup_of(details["Id"]) == [], "processes of the builder are left"
        contexts = _ok(["context", "ls", "--format", "{{.Name}}"], env, tmp_path).split()
        assert temp_context not in contexts
    finally:
        # Only after a failure is anything left to remove here.
        docker(["buildx", "rm", "--force", builder], env, tmp_path)
        if temp_context:
            docker(["context", "rm", "--force", temp_context], env, tmp_path)
        docker_host.docker("container", "rm", "--force", "--volumes", container)
        docker_host.docker("volume", "rm", "--force", f"{container}_state")
        docker_host.docker("image", "rm", site.image)
