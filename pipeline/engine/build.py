"""Build: one buildx multi-platform build per image, pushed by digest only (no tag exists yet).

1. The image's test stage builds (and so runs its tests) for the native platform first.
2. The release target builds for every platform into an OCI layout with labels, annotations,
   a provenance attestation and registry build cache (a cache failure is only a warning).
3. The layout is pushed by digest through the registry client (retries included); the index
   digest comes from `--metadata-file`, per-platform digests from the index itself.
4. Each platform image runs its smoke test through the Docker SDK.
A pull request builds the same way but pushes nothing: the layout stays in dist/ for the scan.
"""

from __future__ import annotations

import contextlib
import json
import platform as host_platform
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline import oci, paths, ui
from pipeline.adapters import docker_engine
from pipeline.adapters.docker_cli import BuildRequest, TestStageRequest
from pipeline.adapters.registry import Manifest, RegistryClient
from pipeline.engine import buildcontext
from pipeline.engine.verify import verify_digest
from pipeline.engine.workspace import Workspace
from pipeline.errors import PipelineError, SpecError
from pipeline.labels import oci_labels
from pipeline.preflight import external_bases
from pipeline.refs import ImageRef
from pipeline.spec import Image, RetryPolicy
from pipeline.state import ImageState, State

MACHINE_TO_PLATFORM = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
    "armv7l": "linux/arm/v7",
}


# Every timestamp in the image (files, directories, config and history) is rewritten to this.
# BuildKit's rewrite only clamps timestamps newer than SOURCE_DATE_EPOCH, and a cached step
# keeps the wall-clock times of the build that first ran it: with the commit time as the epoch,
# a warm cache (a CI runner's, a registry cache) gave other layers than a cold rebuild of the
# same commit. With 0 (as ko and Bazel's rules_oci do) every timestamp is the same everywhere;
# the commit time is in the `org.opencontainers.image.created` label and annotation.
REPRODUCIBLE_EPOCH = 0


def native_platform() -> str:
    return MACHINE_TO_PLATFORM.get(host_platform.machine(), "linux/amd64")


def build_args(ws: Workspace, image: Image) -> dict[str, str]:
    if image.name in ws.build_args_override:  # a rebuild uses exactly the release's arguments
        return dict(ws.build_args_override[image.name])
    args = dict(image.build_args)
    if image.base_image_arg and ws.base_image and image.base_image_arg not in args:
        args[image.base_image_arg] = ws.base_image
    return args


def select_platforms(image: Image, only: Sequence[str] | None) -> tuple[str, ...]:
    if not only:
        return image.platforms
    unknown = [p for p in only if p not in image.platforms]
    if unknown:
        raise SpecError(
            f"--platform: {unknown[0]!r} is not built for image {image.name!r} "
            f"(its platforms: {', '.join(image.platforms)})"
        )
    return tuple(p for p in image.platforms if p in only)


def run_build(ws: Workspace, state: State, *, only_platforms: Sequence[str] | None = None) -> None:
    for image in ws.spec.images:
        platforms = select_platforms(image, only_platforms)
        if ws.push and not only_platforms and _reuse(ws, state, image):
            continue
        state.images[image.name] = build_image(ws, image, platforms)


def _reuse(ws: Workspace, state: State, image: Image) -> bool:
    """Build once, promote many: a commit whose sha tag exists was built, scanned and signed."""
    sha_tag = ws.tagset.sha_tag
    if not ws.spec.publish.reuse_signed_commit or sha_tag is None:
        return False
    digest = ws.client.digest_of(image.repository, sha_tag)
    if digest is None:
        return False
    ui.step(f"{image.name}: {sha_tag} exists ({digest[:19]}…); verifying it instead of rebuilding")
    result = verify_digest(ws, ws.repository(image), digest)
    state.images[image.name] = ImageState(
        name=image.name,
        repository=ws.repository(image),
        index_digest=digest,
        platforms=result.platforms,
        reused=True,
        scan=result.scan,
        signature=result.signature,
        attestations=result.attestations,
        verified=True,
    )
    ui.ok(f"{image.name}: reusing signed {digest[:19]}… (scan {result.scan.verdict})")
    return True


def build_image(ws: Workspace, image: Image, platforms: tuple[str, ...]) -> ImageState:
    docker = ws.docker()
    context = ws.loaded.resolve(image.context)
    dockerfile = context / image.dockerfile
    sent = buildcontext.describe(context, dockerfile)  # what the build is sent, by digest
    repository = ws.repository(image)
    cache_ref = f"{repository}:buildcache" if ws.push else None
    args = build_args(ws, image)
    slug = (
        "" if platforms == image.platforms else "-" + "-".join(map(paths.platform_slug, platforms))
    )
    layout_dir = ws.dist / "oci" / f"{image.name}{slug}"
    shutil.rmtree(layout_dir, ignore_errors=True)
    labels = oci_labels(image, ws.spec, ws.context, ws.tagset.version)
    request = BuildRequest(
        context=context,
        dockerfile=dockerfile,
        platforms=platforms,
        output_dir=layout_dir,
        metadata_file=ws.dist / "oci" / f"{image.name}{slug}.metadata.json",
        target=image.target,
        build_args=args,
        secrets=tuple((s.id, s.env) for s in image.secrets),
        labels=labels,
        annotations=labels,
        cache_ref=cache_ref,
        source_date_epoch=REPRODUCIBLE_EPOCH,
    )
    label = f"{image.name}: buildx build {', '.join(platforms)}"
    if not image.test_target:
        with ui.progress(label):
            result = docker.build(request)
    else:
        # The test stage and the release build run at once: BuildKit shares their common steps,
        # and a failing test still stops the release before anything is pushed.
        tests = TestStageRequest(
            context=context,
            dockerfile=dockerfile,
            target=image.test_target,
            platform=native_platform(),
            build_args=args,
            cache_ref=cache_ref,
        )
        label += f" and tests (stage {image.test_target}, {native_platform()})"
        with ui.progress(label), ThreadPoolExecutor(max_workers=2) as pool:
            tested = pool.submit(docker.build_test_stage, tests)
            built = pool.submit(docker.build, request)
            tested.result()
            result = built.result()
    layout = oci.Layout(layout_dir)
    # A single-platform build exports a bare manifest: wrapped in an index like every other.
    index_digest = layout.ensure_index(result.index_digest, labels)
    index = json.loads(layout.blob(index_digest))
    digests = oci.platform_digests(index)
    missing = [p for p in platforms if p not in digests]
    if missing:
        raise SpecError(f"image {image.name}: the build produced no {missing[0]} image")
    state = ImageState(
        name=image.name,
        repository=repository,
        index_digest=index_digest,
        platforms=digests,
        build_args=args,
        base_images=base_images(ws, dockerfile, args),
        context_digest=sent.digest,
    )
    if not ws.push:
        state.layout = str(layout_dir)
        ui.ok(f"{image.name}: built {index_digest[:19]}… (pull request: not pushed)")
        return state
    with ui.progress(f"{image.name}: push by digest to {ws.registry_host}"):
        push_layout(ws.client, image.repository, layout)
    # The layout holds exactly the pushed blobs: a scan in this process reads it from disk
    # (twice as fast as pulling the digest back); the scan stage removes it.
    state.layout = str(layout_dir)
    ui.ok(f"{image.name}: pushed {repository}@{index_digest}")
    if image.smoke_test:
        smoke_test(ws, image, state)
    return state


def base_images(ws: Workspace, dockerfile: Path, args: dict[str, str]) -> list[list[str | None]]:
    """[reference, digest] of every base the Dockerfile builds FROM. A base given by digest keeps
    it; a tag is resolved through its registry when it can be (one try, no retries: the build
    already pulled it), else the digest stays unknown."""
    found: list[list[str | None]] = []
    for reference in external_bases(dockerfile.read_text(), args):
        digest: str | None = None
        try:
            ref = ImageRef.parse(reference, argument="FROM")
        except SpecError:
            found.append([reference, None])
            continue
        digest = ref.digest
        if digest is None and ref.host is not None:
            client = ws.client_for(ref.host, retry=RetryPolicy(attempts=1))
            with contextlib.suppress(PipelineError, ValueError):
                digest = client.digest_of(ref.repository, ref.tag or "latest")
        found.append([reference, digest])
    return found


def push_layout(client: RegistryClient, repository: str, layout: oci.Layout) -> str:
    """Upload every blob and manifest of the layout, addressed by digest; no tag is written."""
    top = layout.top()
    for descriptor, body in layout.walk(top):
        if descriptor.media_type not in oci.INDEX_TYPES:
            for blob in layout.blobs_of(body):
                if not client.blob_exists(repository, blob.digest):
                    client.push_blob(repository, layout.blob(blob.digest))
        client.put_manifest(
            repository, descriptor.digest, Manifest(descriptor.digest, descriptor.media_type, body)
        )
    return top.digest


def smoke_test(ws: Workspace, image: Image, state: ImageState) -> None:
    credentials = ws.client.credentials
    auth = (
        {"username": credentials.username, "password": credentials.password}
        if credentials
        else None
    )

    def run_one(item: tuple[str, str]) -> tuple[str, str]:
        platform, digest = item
        ref = f"{state.repository}@{digest}"
        return platform, docker_engine.pull_and_run(
            ref, list(image.smoke_test), platform=platform, auth=auth
        )

    platforms = sorted(state.platforms.items())
    label = f"{image.name}: smoke test on {', '.join(p for p, _ in platforms)}"
    with ui.progress(label), ThreadPoolExecutor(max_workers=len(platforms) or 1) as pool:
        outputs = list(pool.map(run_one, platforms))
    for platform, output in outputs:
        ui.info(f"  {platform}: {output.strip()[:120]}")
