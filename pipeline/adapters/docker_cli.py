"""The docker CLI: `docker login` and `docker buildx build`.

Argument lists are built by pure functions (golden-tested without the tool) and run through the
one runner. The build writes an OCI layout and a `--metadata-file`; the index digest is read from
that file, never from buildx's human output. Pushing is not buildx's job here: the `docker`
driver cannot push by digest, so the engine pushes the layout by digest through the registry
client (which also gives every registry write the same retries).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import buildlog
from pipeline.adapters.runner import TIMED_OUT, Runner
from pipeline.errors import EnvironmentProblem, last_line
from pipeline.retry import text_is_content_lock

# The variable that sets a build's deadline (read by the engine; named in the timeout's error).
BUILD_TIMEOUT_ENV = "PIPELINE_BUILD_TIMEOUT"


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    context: Path
    dockerfile: Path
    platforms: tuple[str, ...]
    output_dir: Path  # OCI layout directory (written by buildx)
    metadata_file: Path
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[tuple[str, str], ...] = ()  # (id, env var)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # BuildKit cache imports and exports (`type=registry,ref=…`, `type=gha,scope=…`, …).
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    builder: str | None = None  # a buildx builder of its own (the remote driver); None: default
    # BuildKit's own provenance sits inside the index and changes its digest at every build; the
    # release attests a signed SLSA provenance instead (pipeline.predicates), so it stays off.
    provenance: bool = False
    source_date_epoch: int | None = None
    timeout_seconds: float | None = None  # a Docker host that stops answering never ends a build


@dataclass(frozen=True, kw_only=True)
class TestStageRequest:
    context: Path
    dockerfile: Path
    target: str
    platform: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    cache_from: tuple[str, ...] = ()
    builder: str | None = None
    timeout_seconds: float | None = None


def login_argv(host: str, username: str) -> list[str]:
    """The password goes to stdin (`--password-stdin`), never into argv or the process list."""
    return ["docker", "login", "--username", username, "--password-stdin", host]


def build_argv(request: BuildRequest) -> list[str]:
    argv = [
        "docker",
        "buildx",
        "build",
        *(["--builder", request.builder] if request.builder else []),
        "--progress",
        "plain",
        "--platform",
        ",".join(request.platforms),
        "--file",
        str(request.dockerfile),
        "--metadata-file",
        str(request.metadata_file),
        "--output",
        f"type=oci,dest={request.output_dir},tar=false,rewrite-timestamp=true",
        f"--provenance={'mode=max' if request.provenance else 'false'}",
    ]
    if request.target:
        argv += ["--target", request.target]
    build_args = dict(request.build_args)
    if request.source_date_epoch is not None:
        build_args.setdefault("SOURCE_DATE_EPOCH", str(request.source_date_epoch))
    for key in sorted(build_args):
        argv += ["--build-arg", f"{key}={build_args[key]}"]
    for secret_id, env in request.secrets:
        argv += ["--secret", f"id={secret_id},env={env}"]
    for key in sorted(request.labels):
        argv += ["--label", f"{key}={request.labels[key]}"]
    for key in sorted(request.annotations):
        # On the index and on each platform manifest, so either one identifies the source.
        argv += ["--annotation", f"index,manifest:{key}={request.annotations[key]}"]
    argv += _cache_args(request.cache_from, request.cache_to)
    argv.append(str(request.context))
    return argv


def test_stage_argv(request: TestStageRequest) -> list[str]:
    """Build (and so run) the image's test stage for one platform; the result is only cached."""
    argv = [
        "docker",
        "buildx",
        "build",
        *(["--builder", request.builder] if request.builder else []),
        "--progress",
        "plain",
        "--platform",
        request.platform,
        "--file",
        str(request.dockerfile),
        "--target",
        request.target,
        "--output",
        "type=cacheonly",
    ]
    for key in sorted(request.build_args):
        argv += ["--build-arg", f"{key}={request.build_args[key]}"]
    argv += _cache_args(request.cache_from, ())
    argv.append(str(request.context))
    return argv


def _cache_args(cache_from: tuple[str, ...], cache_to: tuple[str, ...]) -> list[str]:
    argv: list[str] = []
    for item in cache_from:
        argv += ["--cache-from", item]
    for item in cache_to:
        argv += ["--cache-to", item]
    return argv


def create_remote_builder_argv(
    name: str, endpoint: str, *, ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> list[str]:
    """A buildx builder on a BuildKit daemon (the remote driver), TLS files as driver options."""
    argv = ["docker", "buildx", "create", "--name", name, "--driver", "remote"]
    options = [
        f"{key}={value}"
        for key, value in (("cacert", ca_file), ("cert", cert_file), ("key", key_file))
        if value is not None
    ]
    if options:
        argv += ["--driver-opt", ",".join(options)]
    return [*argv, endpoint]


@dataclass(frozen=True)
class BuildResult:
    index_digest: str
    layout: Path


def read_metadata(path: Path) -> str:
    """The OCI index digest from buildx's --metadata-file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EnvironmentProblem(f"buildx wrote no readable metadata file at {path}") from exc
    digest = data.get("containerimage.digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise EnvironmentProblem(f"{path}: no containerimage.digest in buildx metadata")
    return digest


class DockerCli:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def login(self, host: str, username: str, password: str) -> None:
        self.runner.run(
            login_argv(host, username),
            stdin=password,
            error_message=f"docker login to {host} as {username} failed",
        )

    def build(
        self, request: BuildRequest, *, on_line: Callable[[str], None] | None = None
    ) -> BuildResult:
        request.output_dir.parent.mkdir(parents=True, exist_ok=True)
        self.runner.run(
            build_argv(request),
            on_stderr_line=on_line,
            timeout=request.timeout_seconds,
            error_message=lambda result: build_failure(result.stderr, result.exit_code),
        )
        return BuildResult(read_metadata(request.metadata_file), request.output_dir)

    def build_test_stage(
        self, request: TestStageRequest, *, on_line: Callable[[str], None] | None = None
    ) -> None:
        self.runner.run(
            test_stage_argv(request),
            on_stderr_line=on_line,
            timeout=request.timeout_seconds,
            error_message=lambda result: build_failure(
                result.stderr, result.exit_code, stage=request.target
            ),
        )

    def builder_exists(self, name: str) -> bool:
        result = self.runner.run(["docker", "buildx", "inspect", name], check=False, quiet=True)
        return result.exit_code == 0

    def create_remote_builder(
        self,
        name: str,
        endpoint: str,
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.runner.run(
            create_remote_builder_argv(
                name, endpoint, ca_file=ca_file, cert_file=cert_file, key_file=key_file
            ),
            error_message=f"buildx could not create a builder for the BuildKit at {endpoint}",
        )

    def remove_builder(self, name: str) -> None:
        self.runner.run(["docker", "buildx", "rm", name], check=False, quiet=True)

    def version(self) -> str:
        return self.runner.run(["docker", "buildx", "version"], quiet=True).stdout.strip()


def build_failure(stderr: str, exit_code: int, *, stage: str | None = None) -> str:
    """What a failed build says. A lost or hung Docker host is said as such, never as failed
    tests; else buildx's own error line (`failed to solve: …`, which names the failing step; not
    the first `ERROR:` line, which may be a cache importer's warning), and for the test `stage`
    the failing test by name when the test runner's output names it."""
    host = "is the Docker host answering (DOCKER_HOST, the docker context, the builder)?"
    if exit_code == TIMED_OUT:
        return (
            f"docker buildx build gave no result within the build timeout ({last_line(stderr)}): "
            f"{host} {BUILD_TIMEOUT_ENV} sets the limit in seconds"
        )
    lost = next((line for line in stderr.splitlines() if _host_lost(line)), None)
    if lost is not None:
        return f"the Docker host was lost during docker buildx build: {_error_text(lost)}; {host}"
    found = buildlog.failure(stderr)
    tests = f"the image's tests failed (stage '{stage}')" if stage else ""
    if tests and found is not None and found.test:
        return f"{tests}: {found.test} failed"
    prefix = f"{tests}; " if tests else ""
    if found is None:
        return f"{prefix}docker buildx build exited {exit_code}"
    where = f" in {found.step[:200]}" if found.step else ""
    return f"{prefix}docker buildx build failed{where}: {found.error}"


# What buildx and the docker CLI print when the daemon or BuildKit goes away mid-build (seen on
# the bench: dockerd SIGKILLed or stopped, tests/integration/test_error_boundary.py).
HOST_LOST = (
    "Cannot connect to the Docker daemon",
    "error reading from server: EOF",
    "code = Unavailable",
    "transport is closing",
)


def _host_lost(line: str) -> bool:
    # A busy content store also says `code = Unavailable`; the host answered.
    return any(marker in line for marker in HOST_LOST) and not text_is_content_lock(line)


def _error_text(line: str) -> str:
    return line.split("ERROR:", 1)[-1].strip()[:300]
