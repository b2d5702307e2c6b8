"""buildx's `remote` driver against a real buildkitd (tests/support/buildkitd.py: built here from
Debian's docker.io source, v0.13.2, the buildkit that dockerd 26.1.5 embeds).

- `docker buildx create --driver remote tcp://127.0.0.1:PORT` with client certificates makes a
  builder that `--builder NAME` selects (unlike a docker context's builder);
- it builds both platforms FROM the bench base (TLS + password registry: the CA from buildkitd's
  config, the password from the client's DOCKER_CONFIG) to an OCI layout whose per-platform
  manifests are byte-identical to the host daemon's build of the same inputs;
- it pushes by digest to the bench registry;
- buildkitd killed mid-build fails the build, and nothing of it is left running.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.support.bench import Bench
from tests.support.buildkitd import BuildkitServer, buildkitd  # noqa: F401  (fixture)
from tests.support.dockerhost import pids_naming, runc_containers
from tests.support.ocibuild import (
    EPOCH,
    PLATFORMS,
    BuildWatch,
    Layout,
    build_context,
    docker,
    oci_build_argv,
)

BUILDER = "pipeline-remote-test"


def _builder(server: BuildkitServer, bench: Bench) -> str:
    name = f"{BUILDER}-{server.port}"
    if all(existing != name for existing, _ in server.builders):
        server.create_builder(name, bench.provisioned.docker_config)
    return name


def test_remote_builder_boots_and_reports_its_buildkit(
    bench: Bench,
    buildkitd: BuildkitServer,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    name = _builder(buildkitd, bench)
    shown = docker(["buildx", "inspect", "--bootstrap", name], bench.env(), tmp_path)
    assert shown.returncode == 0, shown.stderr
    facts = dict(re.findall(r"^([A-Za-z][A-Za-z ]*):\s+(.*)$", shown.stdout, re.MULTILINE))
    assert facts["Driver"] == "remote"
    assert facts["Endpoint"] == buildkitd.host
    assert facts["Status"] == "running"
    assert facts["BuildKit version"] == "v0.13.2"
    for platform in PLATFORMS:
        assert platform in facts["Platforms"]


def test_remote_build_matches_the_host_daemon_byte_for_byte(
    bench: Bench,
    buildkitd: BuildkitServer,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    name = _builder(buildkitd, bench)
    context = build_context(tmp_path / "context")
    env = {**bench.env(), "SOURCE_DATE_EPOCH": EPOCH}
    layouts = {}
    for label, selector in (("remote", ["--builder", name]), ("host", [])):
        dest = tmp_path / f"{label}-oci"
        argv = oci_build_argv(bench.base_image, dest, rewrite=True, platforms=PLATFORMS)
        started = time.monotonic()
        built = docker([*argv[:2], *selector, *argv[2:]], env, context)
        print(f"{label}: {time.monotonic() - started:.1f}s")
        assert built.returncode == 0, f"{label}: {built.stderr[-3000:]}"
        layouts[label] = Layout.read(dest, Path(f"{dest}.json"))
    remote, host = layouts["remote"], layouts["host"]
    print(f"remote: {remote}\nhost:   {host}")
    assert remote.build_ref.startswith(f"{name}/{name}0/")
    assert remote.manifests == host.manifests
    assert remote.configs == host.configs
    assert remote.index_digest == host.index_digest


def test_remote_builder_pushes_by_digest(
    bench: Bench,
    buildkitd: BuildkitServer,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    name = _builder(buildkitd, bench)
    context = build_context(tmp_path / "context")
    repository = f"{bench.registry.host}/remote/probe"
    metadata = tmp_path / "meta.json"
    pushed = docker(
        [
            "buildx",
            "build",
            "--builder",
            name,
            "--platform",
            ",".join(PLATFORMS),
            "--build-arg",
            f"BASE={bench.base_image}",
            "--provenance=false",
            "--output",
            f"type=image,name={repository},push-by-digest=true,name-canonical=true,push=true",
            "--metadata-file",
            str(metadata),
            ".",
        ],
        {**bench.env(), "SOURCE_DATE_EPOCH": EPOCH},
        context,
    )
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    digest = json.loads(metadata.read_text())["containerimage.digest"]
    stored = bench.client().resolve("remote/probe", digest)
    assert stored is not None
    assert stored.is_index
    platforms = {
        f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        for entry in stored.document["manifests"]
    }
    assert platforms == set(PLATFORMS)


def test_buildkitd_killed_mid_build_fails_the_build(bench: Bench, tmp_path: Path) -> None:
    from tests.support.buildkitd import start_buildkitd

    assert bench.registry.ca_file is not None
    server = start_buildkitd(
        tmp_path / "buildkitd", registries={bench.registry.host: bench.registry.ca_file}
    )
    name = server.create_builder(f"{BUILDER}-kill-{server.port}", bench.provisioned.docker_config)
    watch = BuildWatch(["--builder", name], bench.base_image, bench.env(), tmp_path / "context")
    try:
        assert watch.running.wait(120), "\n".join(watch.lines[-30:])
        time.sleep(1)
        started = time.monotonic()
        server.send_signal(signal.SIGKILL)
        code = watch.proc.wait(timeout=60)
        failed_after = time.monotonic() - started
    finally:
        server.stop()
        watch.close()
    tail = "\n".join(watch.lines[-6:])
    print(f"buildx exited {code} {failed_after:.1f}s after the kill\n{tail}")
    assert code == 1, tail
    assert failed_after < 30, tail
    assert len(watch.errors) == 1, tail
    assert "Unavailable" in watch.errors[0], tail
    assert pids_naming(server.folder) == []
    assert runc_containers(server.folder) == []
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 1193$"], capture_output=True, check=False)
    assert sleepers.stdout == b"", sleepers.stdout
