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

from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem


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
    cache_ref: str | None = None  # registry cache, e.g. host/repo:buildcache
    cache_export: bool = True
    # BuildKit's own provenance sits inside the index and changes its digest at every build; the
    # release attests a signed SLSA provenance instead (pipeline.predicates), so it stays off.
    provenance: bool = False
    source_date_epoch: int | None = None


@dataclass(frozen=True, kw_only=True)
class TestStageRequest:
    context: Path
    dockerfile: Path
    target: str
    platform: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    cache_ref: str | None = None


def login_argv(host: str, username: str) -> list[str]:
    """The password goes to stdin (`--password-stdin`), never into argv or the process list."""
    return ["docker", "login", "--username", username, "--password-stdin", host]


def build_argv(request: BuildRequest) -> list[str]:
    argv = [
        "docker",
        "buildx",
        "build",
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
    argv += _cache_args(request.cache_ref, export=request.cache_export)
    argv.append(str(request.context))
    return argv


def test_stage_argv(request: TestStageRequest) -> list[str]:
    """Build (and so run) the image's test stage for one platform; the result is only cached."""
    argv = [
        "docker",
        "buildx",
        "build",
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
    argv += _cache_args(request.cache_ref, export=False)
    argv.append(str(request.context))
    return argv


def _cache_args(cache_ref: str | None, *, export: bool) -> list[str]:
    if not cache_ref:
        return []
    args = ["--cache-from", f"type=registry,ref={cache_ref}"]
    if export:
        # A cache that cannot be written is a warning in the log, never a failed release.
        args += ["--cache-to", f"type=registry,ref={cache_ref},mode=max,ignore-error=true"]
    return args


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
            error_message=lambda result: build_failure(result.stderr, result.exit_code),
        )
        return BuildResult(read_metadata(request.metadata_file), request.output_dir)

    def build_test_stage(
        self, request: TestStageRequest, *, on_line: Callable[[str], None] | None = None
    ) -> None:
        self.runner.run(
            test_stage_argv(request),
            on_stderr_line=on_line,
            error_message=lambda result: (
                f"the image's tests failed (stage '{request.target}'); "
                + build_failure(result.stderr, result.exit_code)
            ),
        )

    def version(self) -> str:
        return self.runner.run(["docker", "buildx", "version"], quiet=True).stdout.strip()


def build_failure(stderr: str, exit_code: int) -> str:
    """The first `ERROR:` line buildx printed, which names the failing step."""
    for line in stderr.splitlines():
        if line.startswith("ERROR:") or " ERROR: " in line:
            return f"docker buildx build failed: {line.split('ERROR:', 1)[1].strip()[:300]}"
    return f"docker buildx build exited {exit_code}"
