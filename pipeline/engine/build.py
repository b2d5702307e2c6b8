"""Build: one image at a time here (the scheduler runs images side by side), pushed by digest.

For each image:
1. A commit already released (its sha tag exists) is verified and reused. Otherwise the image's
   inputs are named by digest (`engine.changes`); when an earlier signed release had exactly
   these inputs, that digest is verified and reused ("unchanged since X.Y.Z"): re-signed for the
   new version by `sign`, re-tagged by `publish`, never rebuilt.
2. The test stage builds (and so runs its tests) for the native platform while the release
   target builds for every platform into an OCI layout with labels, annotations and timestamps
   rewritten to the epoch. Images of the spec it is built FROM come in by digest (a copy of the
   Dockerfile naming them `host/repo@sha256:…`, `imagegraph.pin_dockerfile`). A platform with a
   native builder of its own (`build.builders`) is built there, at the same time as the others,
   and the platforms are merged by digest (`engine.merge`).
3. The layout is pushed by digest through the registry client (retries included); the index
   digest comes from `--metadata-file` (or the merge), per-platform digests from the index.
4. Each platform image runs its smoke test through the Docker SDK.
A pull request builds the same way but pushes nothing: the layout stays in dist/ for the scan.
"""

from __future__ import annotations

import contextlib
import json
import platform as host_platform
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline import buildlog, imagegraph, oci, paths, ui
from pipeline.adapters import docker_engine
from pipeline.adapters.docker_cli import BuildRequest, BuildResult, DockerCli, TestStageRequest
from pipeline.adapters.registry import Manifest, RegistryClient
from pipeline.engine import buildcontext, builders, changes, merge
from pipeline.engine.verify import verify_digest
from pipeline.engine.workspace import Workspace
from pipeline.errors import CommandError, PipelineError, SpecError
from pipeline.labels import oci_labels
from pipeline.preflight import external_bases
from pipeline.refs import ImageRef
from pipeline.spec import Image, RetryPolicy
from pipeline.state import ImageState, State
from pipeline.tags import version_tag_names

MACHINE_TO_PLATFORM = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
    "armv7l": "linux/arm/v7",
}
CACHE_ENV = "PIPELINE_BUILD_CACHE"

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


def spec_graph(ws: Workspace) -> dict[str, list[imagegraph.SpecBase]]:
    """Which images of the spec each image is built FROM (build arguments applied)."""
    args = {image.name: build_args(ws, image) for image in ws.spec.images}
    hosts = {ws.registry_host, ws.spec.registry.host}
    return imagegraph.spec_graph(ws.loaded, args, hosts)


def build_step(
    ws: Workspace, state: State, name: str, *, only_platforms: Sequence[str] | None = None
) -> None:
    """The build step of one image (see the module's docstring)."""
    image = ws.image(name)
    platforms = select_platforms(image, only_platforms)
    whole = ws.push and not only_platforms
    if whole and _reuse(ws, state, image):
        return
    bases = pinned_bases(ws, state, image)
    inputs = image_inputs(ws, image, platforms, bases)
    if whole and ws.spec.build.reuse_unchanged and _reuse_unchanged(ws, state, image, inputs):
        return
    if whole and not inputs.pinned:
        ui.info(f"  {image.name}: {inputs.unpinned[0]} has no known digest: always rebuilt")
    built = build_image(ws, image, platforms, bases=bases, inputs=inputs)
    with ws.state_lock:
        state.images[image.name] = built


def _reuse(ws: Workspace, state: State, image: Image) -> bool:
    """Build once, promote many: a commit whose sha tag exists was built, scanned and signed."""
    sha_tag = ws.tagset_for(image).sha_tag
    if not ws.spec.publish.reuse_signed_commit or sha_tag is None:
        return False
    digest = ws.client.digest_of(image.repository, sha_tag)
    if digest is None:
        return False
    ui.step(f"{image.name}: {sha_tag} exists ({digest[:19]}…); verifying it instead of rebuilding")
    result = verify_digest(ws, ws.repository(image), digest)
    reused = ImageState(
        name=image.name,
        repository=ws.repository(image),
        index_digest=digest,
        platforms=result.platforms,
        reused=True,
        scan=result.scan,
        signature=result.signature,
        attestations=result.attestations,
        verified=True,
        needs=sorted({b.image for b in ws_graph(ws).get(image.name, [])}),
    )
    with ws.state_lock:
        state.images[image.name] = reused
    ui.ok(f"{image.name}: reusing signed {digest[:19]}… (scan {result.scan.verdict})")
    return True


def ws_graph(ws: Workspace) -> dict[str, list[imagegraph.SpecBase]]:
    """The spec graph, computed once per workspace."""
    with ws.state_lock:
        if ws.graph is None:
            ws.graph = spec_graph(ws)
        return ws.graph


@dataclass(frozen=True)
class PinnedBase:
    """A FROM naming another image of the spec, and the digest this build uses for it."""

    reference: str  # as the FROM line reads
    image: str
    repository: str  # host/path
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def pinned_dockerfile(
    ws: Workspace,
    image: Image,
    dockerfile: Path,
    args: Mapping[str, str],
    bases: Sequence[PinnedBase],
) -> Path:
    """A copy of the Dockerfile whose FROM lines name the spec images it is built FROM by digest
    (`imagegraph.pin_dockerfile`), in this run's scratch folder, with its own ignore file when it
    has one (`<Dockerfile>.dockerignore`); the context stays the image's."""
    if not bases:
        return dockerfile
    folder = ws.scratch / "dockerfiles" / image.name
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / dockerfile.name
    pins = {b.reference: b.pinned for b in bases}
    copy.write_text(imagegraph.pin_dockerfile(dockerfile.read_text(), args, pins))
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if specific.is_file():
        shutil.copyfile(specific, copy.with_name(specific.name))
    return copy


def pinned_bases(ws: Workspace, state: State, image: Image) -> list[PinnedBase]:
    """The spec images `image` is built FROM, each by the digest this run uses: built (or reused)
    by this run, else this commit's release of it, else its newest release, verified."""
    found = []
    for base in ws_graph(ws).get(image.name, []):
        other = ws.image(base.image)
        entry = state.images.get(other.name)
        digest = entry.index_digest if entry is not None else None
        if digest is None:
            digest = _released_digest(ws, other)
        found.append(PinnedBase(base.reference, other.name, ws.repository(other), digest))
    return found


def _released_digest(ws: Workspace, image: Image) -> str:
    """An image this run does not build (a per-image release of another): the release of this
    commit (its sha tag), else its newest released version; verified before it is built on."""
    sha_tag = ws.tagset_for(image).sha_tag or f"sha-{ws.context.short_sha}"
    digest = ws.client.digest_of(image.repository, sha_tag)
    through: str | None = None
    if digest is None:
        policy = ws.tag_policy(image)
        versions = changes.released_versions(ws.client.tags(image.repository), policy)
        for version in versions:
            through = version_tag_names(policy, version)[0]
            digest = ws.client.digest_of(image.repository, through)
            if digest:
                break
    if digest is None:
        raise SpecError(
            f"images: an image is built FROM {image.name}, which has no release in "
            f"{ws.repository(image)} and is not released by this run; release {image.name} first"
        )
    verify_digest(ws, ws.repository(image), digest, through_tag=through)
    return digest


def image_inputs(
    ws: Workspace, image: Image, platforms: Sequence[str], bases: Sequence[PinnedBase]
) -> changes.Inputs:
    context = ws.loaded.resolve(image.context)
    dockerfile = context / image.dockerfile
    sent = buildcontext.describe(context, dockerfile)  # what the build is sent, by digest
    args = build_args(ws, image)
    return changes.fingerprint(
        ws.spec,
        image,
        context_digest=sent.digest,
        dockerfile=dockerfile.read_bytes(),
        build_args=args,
        bases=base_images(ws, dockerfile, args, bases),
        platforms=platforms,
        source_url=ws.context.source_url,
    )


def _reuse_unchanged(ws: Workspace, state: State, image: Image, inputs: changes.Inputs) -> bool:
    """An earlier signed release with these very inputs: verify it and reuse its digest."""
    if not inputs.pinned:
        return False
    policy = ws.tag_policy(image)
    found = changes.find_unchanged(
        ws.client, image.repository, policy, inputs.digest, skip=ws.tagset_for(image).version
    )
    if found is None:
        return False
    repository = ws.repository(image)
    label = f"{image.name}: unchanged since {found.version}; verify {found.digest[:19]}…"
    with ui.progress(label, row=(image.name, "")):
        result = verify_digest(ws, repository, found.digest, through_tag=found.tag)
    unchanged = ImageState(
        name=image.name,
        repository=repository,
        index_digest=found.digest,
        platforms=result.platforms,
        scan=result.scan,
        attestations=result.attestations,
        inputs=inputs.digest,
        unchanged_since=found.version,
        build_args=build_args(ws, image),
        base_images=[list(b) for b in inputs.document["bases"]],
        needs=sorted({b.image for b in ws_graph(ws).get(image.name, [])}),
    )
    with ws.state_lock:
        state.images[image.name] = unchanged
    ui.ok(f"{image.name}: unchanged since {found.version} ({found.digest[:19]}…): not rebuilt")
    return True


CACHE_KINDS = ("auto", "none", "gha", "local", "registry")


def check_cache_env(environ: Mapping[str, str]) -> None:
    """PIPELINE_BUILD_CACHE, checked before anything runs: `none`, `gha`, `local:DIR`,
    `registry:HOST/REPO` (a repository of its own, never a release repository)."""
    text = environ.get(CACHE_ENV) or ""
    if not text:
        return
    kind, _, value = text.partition(":")
    if kind not in CACHE_KINDS or (kind in ("local", "registry") and not value):
        raise SpecError(
            f"{CACHE_ENV}: {text!r} is not a cache (none, gha, local:DIR or registry:HOST/REPO)"
        )
    if kind == "registry" and ("/" not in value or ":" in value.rpartition("/")[2]):
        raise SpecError(f"{CACHE_ENV}: {value!r} is not a repository host/path (no tag)")


def cache_settings(ws: Workspace, image: Image, suffix: str = "") -> tuple[tuple[str, ...], ...]:
    """(--cache-from values, --cache-to values) for one image's build (`suffix`: a platform of
    its own). The cache never goes to the release repository."""
    policy = ws.spec.build.cache
    kind, _, value = (ws.environ.get(CACHE_ENV) or "").partition(":")
    kind = kind or policy.type
    mode = policy.mode
    scope = f"{image.name}{suffix}"
    if kind == "auto":
        on_github = ws.environ.get("GITHUB_ACTIONS") == "true"
        runtime = ws.environ.get("ACTIONS_RUNTIME_TOKEN") and (
            ws.environ.get("ACTIONS_CACHE_URL") or ws.environ.get("ACTIONS_RESULTS_URL")
        )
        kind = "gha" if on_github and runtime else "none"
    if kind == "none" or not ws.push:
        return (), ()
    if kind == "gha":
        return (f"type=gha,scope={scope}",), (
            f"type=gha,scope={scope},mode={mode},ignore-error=true",
        )
    if kind == "registry":
        ref = f"{value or policy.ref}:{scope}"
        return (f"type=registry,ref={ref}",), (
            f"type=registry,ref={ref},mode={mode},ignore-error=true",
        )
    if kind == "local":
        folder = Path(value) if value else ws.loaded.resolve(policy.directory or "buildcache")
        where = folder / scope
        imports = (f"type=local,src={where}",) if (where / "index.json").is_file() else ()
        return imports, (f"type=local,dest={where},mode={mode},ignore-error=true",)
    raise SpecError(
        f"{CACHE_ENV}: {kind!r} is not a cache (none, gha, local:DIR or registry:HOST/REPO)"
    )


@dataclass(frozen=True)
class _Job:
    kind: str  # "build" or "test"
    platforms: tuple[str, ...]
    native: builders.Native | None  # None: this machine's docker
    request: BuildRequest | TestStageRequest


@dataclass(frozen=True)
class _Plan:
    layout_dir: Path
    labels: dict[str, str]
    jobs: tuple[_Job, ...]
    label: str


def _plan(
    ws: Workspace, image: Image, platforms: tuple[str, ...], bases: Sequence[PinnedBase]
) -> _Plan:
    """The buildx runs of one image: the test stage (native platform), the platforms on this
    machine in one build, and each platform with a native builder in a build of its own."""
    context = ws.loaded.resolve(image.context)
    args = build_args(ws, image)
    dockerfile = pinned_dockerfile(ws, image, context / image.dockerfile, args, bases)
    slug = (
        "" if platforms == image.platforms else "-" + "-".join(map(paths.platform_slug, platforms))
    )
    layout_dir = ws.dist / "oci" / f"{image.name}{slug}"
    shutil.rmtree(layout_dir, ignore_errors=True)
    labels = oci_labels(image, ws.spec, ws.context, ws.tagset_for(image).version)
    native = builders.resolve(ws, ws.spec.build.builders)
    local = tuple(p for p in platforms if p not in native)
    groups: list[tuple[tuple[str, ...], builders.Native | None]] = [(local, None)] if local else []
    groups += [((p,), native[p]) for p in platforms if p in native]
    jobs: list[_Job] = []
    for group, where in groups:
        suffix = "-" + "-".join(map(paths.platform_slug, group)) if len(groups) > 1 else ""
        cache_from, cache_to = cache_settings(ws, image, suffix)
        out = layout_dir.with_name(layout_dir.name + suffix)
        request = BuildRequest(
            context=context,
            dockerfile=dockerfile,
            platforms=group,
            output_dir=out,
            metadata_file=out.with_name(out.name + ".metadata.json"),
            target=image.target,
            build_args=args,
            secrets=tuple((s.id, s.env) for s in image.secrets),
            labels=labels,
            annotations=labels,
            cache_from=cache_from,
            cache_to=cache_to,
            builder=where.builder if where else None,
            source_date_epoch=REPRODUCIBLE_EPOCH,
            timeout_seconds=ws.build_timeout,
        )
        jobs.append(_Job("build", group, where, request))
    label = f"{image.name}: buildx build " + ", ".join(
        f"{', '.join(g)} on {w.name}" if w else ", ".join(g) for g, w in groups
    )
    if image.test_target:
        # The test stage and the release build run at once: BuildKit shares their common steps,
        # and a failing test still stops the release before anything is pushed.
        tests = TestStageRequest(
            context=context,
            dockerfile=dockerfile,
            target=image.test_target,
            platform=native_platform(),
            build_args=args,
            cache_from=cache_settings(ws, image)[0],
            timeout_seconds=ws.build_timeout,
        )
        jobs.insert(0, _Job("test", (native_platform(),), None, tests))
        label += f" and tests (stage {image.test_target}, {native_platform()})"
    return _Plan(layout_dir, labels, tuple(jobs), label)


def _run_jobs(ws: Workspace, image: Image, plan: _Plan) -> list[BuildResult]:
    def run_job(job: _Job) -> BuildResult | None:
        docker = DockerCli(job.native.runner if job.native else ws.runner)
        feed = _Feed(image.name, job.platforms[0] if len(job.platforms) == 1 else "", job.kind)
        try:
            if isinstance(job.request, TestStageRequest):
                docker.build_test_stage(job.request, on_line=feed)
                return None
            return docker.build(job.request, on_line=feed)
        except CommandError as exc:
            show_failure(image.name, exc.stderr)
            raise

    with ui.progress(plan.label, row=(image.name, "")), ThreadPoolExecutor(len(plan.jobs)) as pool:
        return [r for r in pool.map(run_job, plan.jobs) if r is not None]


def build_image(
    ws: Workspace,
    image: Image,
    platforms: tuple[str, ...],
    *,
    bases: Sequence[PinnedBase] = (),
    inputs: changes.Inputs | None = None,
) -> ImageState:
    plan = _plan(ws, image, platforms, bases)
    built = _run_jobs(ws, image, plan)
    if len(built) == 1:
        # A single-platform build exports a bare manifest: wrapped in an index like every other.
        index_digest = oci.Layout(plan.layout_dir).ensure_index(built[0].index_digest, plan.labels)
    else:
        pieces = [(oci.Layout(r.layout), r.index_digest) for r in built]
        index_digest = merge.merge_layouts(pieces, plan.layout_dir, plan.labels)
    layout = oci.Layout(plan.layout_dir)
    digests = oci.platform_digests(json.loads(layout.blob(index_digest)))
    missing = [p for p in platforms if p not in digests]
    if missing:
        raise SpecError(f"image {image.name}: the build produced no {missing[0]} image")
    dockerfile = ws.loaded.resolve(image.context) / image.dockerfile
    args = build_args(ws, image)
    state = ImageState(
        name=image.name,
        repository=ws.repository(image),
        index_digest=index_digest,
        platforms=digests,
        build_args=args,
        base_images=base_images(ws, dockerfile, args, bases),
        context_digest=inputs.document["context"] if inputs else None,
        inputs=inputs.digest if inputs and inputs.pinned else None,
        needs=sorted({b.image for b in bases}),
        layout=str(plan.layout_dir),
    )
    if not ws.push:
        ui.ok(f"{image.name}: built {index_digest[:19]}… (pull request: not pushed)")
        return state
    with ui.progress(f"{image.name}: push by digest to {ws.registry_host}", row=(image.name, "")):
        push_layout(ws.client, image.repository, layout)
    # The layout holds exactly the pushed blobs: a scan in this process reads it from disk
    # (twice as fast as pulling the digest back); the scan stage removes it.
    ui.ok(f"{image.name}: pushed {state.repository}@{index_digest}")
    if image.smoke_test:
        if ws.defer_smoke:  # the scan step runs it beside Trivy, both read the pushed image
            with ws.state_lock:
                ws.smoke_tests[image.name] = lambda: smoke_test(ws, image, state)
        else:
            smoke_test(ws, image, state)
    return state


class _Feed:
    """buildx's plain progress of one build, to the board: the image and platform's row (live
    on a terminal) and, in CI logs, one condensed line per finished step."""

    def __init__(self, image: str, platform: str, kind: str) -> None:
        self.progress = buildlog.Progress()
        self.image = image
        self.platform = platform
        self.kind = kind

    def __call__(self, line: str) -> None:
        found = self.progress.feed(line)
        board = ui.active_board()
        if found is None or board is None:
            return
        step, status = found
        platform = step.platform or self.platform
        text = buildlog.condensed(step, status)
        key = (self.image, platform)
        if text is None:
            if status == "started" and not step.internal:
                board.status(key, f"{self.kind}: {step.text}")
            return
        board.line(key, f"{self.kind}: {text}")


def show_failure(image: str, stderr: str) -> None:
    """A failing build step's own output (a failing test's report), before the error line."""
    found = buildlog.failure(stderr)
    if found is None or not found.output:
        return
    ui.warn(f"{image}: {found.step} failed; its last {len(found.output)} line(s):")
    for line in found.output:
        ui.info(f"  | {line}")


def base_images(
    ws: Workspace, dockerfile: Path, args: dict[str, str], bases: Sequence[PinnedBase] = ()
) -> list[list[str | None]]:
    """[reference, digest] of every base the Dockerfile builds FROM. A spec image has the digest
    this build used; a base given by digest keeps it; a tag is resolved through its registry when
    it can be (one try, no retries: the build already pulled it), else the digest stays unknown."""
    pinned = {b.reference: b.digest for b in bases}
    found: list[list[str | None]] = []
    for reference in external_bases(dockerfile.read_text(), args):
        if reference in pinned:
            found.append([reference, pinned[reference]])
            continue
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
                # push_blob_file asks the registry first: a blob already there is not sent.
                client.push_blob_file(repository, layout.blob_path(blob.digest), blob.digest)
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
    with (
        ui.progress(label, row=(image.name, "")),
        ThreadPoolExecutor(max_workers=len(platforms) or 1) as pool,
    ):
        outputs = list(pool.map(run_one, platforms))
    for platform, output in outputs:
        ui.info(f"  {image.name} {platform}: {output.strip()[:120]}")


def build_order(ws: Workspace) -> list[str]:
    graph = ws_graph(ws)
    names = [i.name for i in ws.images]
    needs: Mapping[str, list[str]] = {n: [b.image for b in graph.get(n, [])] for n in names}
    return imagegraph.build_order(names, needs)
