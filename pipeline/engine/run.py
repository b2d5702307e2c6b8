"""Running steps: the order lives in the stage table (`pipeline.stages`), not in nox or CI.

`run_stages(("preflight", "build", "scan", "sign", "publish"), options)` is a whole release in one
process; CI runs the same steps one per job, handing `dist/state.json` between them. Every step
saves the state when it ends, so a failed step leaves what came before it usable and a re-run
continues.
"""

from __future__ import annotations

import os
import resource
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline import imagegraph, operation, paths, tags, ui
from pipeline import state as state_file
from pipeline.adapters.cosign import verify_argv
from pipeline.context import ReleaseContext
from pipeline.engine import build, builders, merge, publish, report, scan, schedule, sign
from pipeline.engine.loading import load_release
from pipeline.engine.workspace import Workspace, open_workspace
from pipeline.errors import GitError, PipelineError, SpecError
from pipeline.preflight import enforce
from pipeline.refs import DigestRef
from pipeline.secrets import redact
from pipeline.specload import LoadedSpec
from pipeline.stages import Step
from pipeline.state import ImageState, State
from pipeline.tags import TagSet


@dataclass(frozen=True)
class Options:
    spec: str | None = None
    registry: str | None = None
    allow_dirty: bool = False
    platforms: tuple[str, ...] = ()
    dist: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


StepFunction = Callable[[Workspace, State, Options], None]


def _preflight(ws: Workspace, _state: State, _options: Options) -> None:
    args = {image.name: build.build_args(ws, image) for image in ws.spec.images}
    enforce(ws.loaded, args, spec_bases=imagegraph.references(build.ws_graph(ws)))


def _image_steps(step: Step) -> StepFunction:
    return lambda ws, st, opts: run_images(ws, st, (step,), opts, save=None)


STEP_FUNCTIONS: Mapping[Step, StepFunction] = {
    "preflight": _preflight,
    "build": _image_steps("build"),
    "merge": lambda ws, st, _opts: merge.run_merge(ws, st),
    "scan": _image_steps("scan"),
    "sign": _image_steps("sign"),
    "publish": lambda ws, st, _opts: publish.run_publish(ws, st),
}
# Steps that start a new state file (the others continue the previous step's).
STARTS_STATE: frozenset[Step] = frozenset({"preflight", "build", "merge"})
# Steps each image runs on its own, images side by side (`schedule`): consecutive ones form one
# chain per image (a release builds, scans and signs an image while others still build).
IMAGE_STEPS: tuple[Step, ...] = ("build", "scan", "sign")


def image_functions(
    ws: Workspace, state: State, options: Options
) -> dict[Step, schedule.ImageStep]:
    return {
        "build": lambda name: build.build_step(ws, state, name, only_platforms=options.platforms),
        "scan": lambda name: scan.scan_step(ws, state, name),
        "sign": lambda name: sign.sign_step(ws, state, name),
    }


def run_images(
    ws: Workspace,
    state: State,
    steps: Sequence[Step],
    options: Options,
    *,
    save: Callable[[], None] | None,
) -> None:
    """`steps` for every image of this run, images side by side (see `engine.schedule`)."""
    ws.defer_smoke = "build" in steps and "scan" in steps
    if "build" in steps:
        names = build.build_order(ws)
    else:
        names = [i.name for i in ws.images if i.name in state.images]
    graph = build.ws_graph(ws)
    needs = {name: [b.image for b in graph.get(name, [])] for name in names}

    def done(unit: schedule.Unit, started: float, ended: float) -> None:
        with ws.state_lock:
            image = state.images.get(unit.image)
            if image is not None:
                image.timings[unit.step] = round(ended - started, 2)
                image.spans[unit.step] = [round(started, 2), round(ended, 2)]
            if save is not None:
                save()

    def failed(unit: schedule.Unit, error: BaseException) -> None:
        with ws.state_lock:
            ws.failed_step = ws.failed_step or unit.step
            image = state.images.get(unit.image)
            if image is None:  # failed before its build was recorded: the report still names it
                spec_image = ws.image(unit.image)
                image = state.images[unit.image] = ImageState(
                    name=unit.image, repository=ws.repository(spec_image)
                )
            image.error = f"{unit.step}: " + redact(str(error)).replace("\n", " ")[:300]

    spans = schedule.run(
        names,
        steps,
        image_functions(ws, state, options),
        needs=needs,
        parallel=schedule.workers(ws.spec),
        on_done=done,
        on_failed=failed,
    )
    for step, span in spans.items():
        state.timings[step] = round(span.ended - span.started, 2)


def state_path(ws: Workspace, steps: Sequence[Step], options: Options) -> Path:
    if "build" in steps and options.platforms and len(steps) == 1:
        if len(options.platforms) != 1:
            raise SpecError("--platform: a per-platform build job takes exactly one platform")
        return ws.path(paths.platform_state(options.platforms[0]))
    return ws.path(paths.STATE)


def run_stages(steps: Sequence[Step], options: Options) -> State:
    loaded, context, tagset = load_release(options.spec, options.environ, on_warning=ui.warn)
    dist = options.dist or paths.project_root(loaded.base_dir) / paths.DIST
    run = report.Run(steps=tuple(steps), commit=context.sha, version=tagset.version)
    # First of all, the reports say this run is under way: a report left by an earlier run can
    # never be mistaken for this one's, whatever happens next.
    report.write_all(dist, run, None, options.environ)
    outcome = _Outcome(run)
    try:
        return _run(
            steps,
            options,
            loaded=loaded,
            context=context,
            tagset=tagset,
            dist=dist,
            outcome=outcome,
        )
    except KeyboardInterrupt:
        outcome.end("interrupted", "interrupted (Ctrl-C)")
        raise
    except PipelineError as exc:
        outcome.end("failed", str(exc))
        raise
    except Exception as exc:
        outcome.end("failed", f"unexpected failure: {type(exc).__name__}: {exc}")
        raise
    finally:
        if outcome.run.status == "running":
            outcome.end("pass", None)
        report.write_all(
            dist,
            outcome.run,
            outcome.state,
            options.environ,
            registry=outcome.ws.registry_host if outcome.ws else None,
            throwaway_key=bool(outcome.ws and outcome.ws.throwaway_key),
            retries=len(outcome.ws.retries) if outcome.ws else 0,
            show=steps,
        )


def _groups(steps: Sequence[Step]) -> list[tuple[Step, ...]]:
    """Steps in order, consecutive image steps (build, scan, sign) as one group."""
    groups: list[tuple[Step, ...]] = []
    for step in steps:
        if step in IMAGE_STEPS and groups and groups[-1][-1] in IMAGE_STEPS:
            groups[-1] = (*groups[-1], step)
        else:
            groups.append((step,))
    return groups


@dataclass
class _Outcome:
    """What a run got to, for the reports its `finally` writes."""

    run: report.Run
    state: State | None = None
    ws: Workspace | None = None
    step: str | None = None
    started: float = field(default_factory=time.monotonic)

    def end(self, status: str, error: str | None) -> None:
        self.run.status = status
        self.run.failed_step = self.step if status != "pass" else None
        self.run.error = redact(error).replace("\n", " ") if error else None
        self.run.finished_at = report.now()
        self.run.seconds = round(time.monotonic() - self.started, 2)
        # ru_maxrss is in KiB on Linux: this process's own peak, its tools not included.
        self.run.peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _check_arguments(
    steps: Sequence[Step], options: Options, loaded: LoadedSpec, context: ReleaseContext
) -> tags.ReleaseSet:
    """What can be refused before any login or build: a dirty tree, a platform not built."""
    if context.dirty and "build" in steps and not options.allow_dirty:
        raise GitError(
            "the working tree has uncommitted changes: a release must be built from a commit "
            "(commit or stash them, or pass --allow-dirty for a throw-away build)"
        )
    release = tags.release_set(loaded.spec, context)
    build.check_cache_env(options.environ)
    builders.check_env(options.environ)
    if options.platforms:
        for image in loaded.spec.images:
            if image.name in release.tagsets:
                build.select_platforms(image, options.platforms)
    return release


def _run(
    steps: Sequence[Step],
    options: Options,
    *,
    loaded: LoadedSpec,
    context: ReleaseContext,
    tagset: TagSet,
    dist: Path,
    outcome: _Outcome,
) -> State:
    release = _check_arguments(steps, options, loaded, context)
    with open_workspace(
        loaded,
        context,
        tagset,
        registry_override=options.registry,
        environ=options.environ,
        dist=dist,
        steps=frozenset(steps),
    ) as ws:
        outcome.ws = ws
        if "sign" in steps and ws.push:
            _ = ws.signing  # the key is read and decrypted now, before anything is built
        if "build" in steps and ws.push and not options.platforms:
            with ui.progress("immutable tags are free for this release"):
                publish.refuse_early(ws)
        path = state_path(ws, steps, options)
        if steps[0] in STARTS_STATE:
            state = State(commit=context.sha, version=tagset.version, context=context.to_json())
            state.timings["setup"] = round(time.monotonic() - outcome.started, 2)
        else:
            state = state_file.load(path, commit=context.sha)
        state.run_id, state.started_at = outcome.run.id, outcome.run.started_at
        outcome.state = state
        if release.left_out:
            ui.info(f"  {context.tag} releases {', '.join(release.names)} only")
        _run_steps(ws, state, steps, options, path=path, outcome=outcome)
        if "publish" in steps and ws.push:
            where_to_look(ws, state)
        return state


def _run_steps(
    ws: Workspace,
    state: State,
    steps: Sequence[Step],
    options: Options,
    *,
    path: Path,
    outcome: _Outcome,
) -> None:
    def save() -> None:
        with ws.state_lock:
            state_file.save(state, path)

    with ui.board():
        for group in _groups(steps):
            outcome.step = "/".join(group)
            started = time.monotonic()
            try:
                with operation.doing(f"the {outcome.step} step"):
                    if group[0] in IMAGE_STEPS:
                        run_images(ws, state, group, options, save=save)
                    else:
                        STEP_FUNCTIONS[group[0]](ws, state, options)
            except BaseException:
                outcome.step = ws.failed_step or outcome.step  # the step that failed, by name
                raise
            finally:
                for step in group:
                    state.done(step, 0.0)
                if group[0] not in IMAGE_STEPS:
                    state.timings[group[0]] = round(time.monotonic() - started, 2)
                save()
    outcome.step = None


def where_to_look(ws: Workspace, state: State) -> None:
    ui.step("where to look (from the project root)")
    ui.info(f"  registry: {ws.client.base_url}/v2/_catalog")
    ui.info(f"  report:   {paths.REPORT}, {paths.SUMMARY}")
    for image in state.images.values():
        tag = next((t.name for t in image.tags if t.immutable), None)
        ref = f"{image.repository}:{tag}" if tag else image.digest_ref
        env = []
        if "SSL_CERT_FILE" in ws.runner.env and ws.sandbox is not None:
            env.append(f"SSL_CERT_FILE={ws.runner.env['SSL_CERT_FILE']}")
        if "DOCKER_CONFIG" in ws.runner.env and ws.sandbox is not None:
            env.append(f"DOCKER_CONFIG={ws.runner.env['DOCKER_CONFIG']}")
        identity = ws.identity
        if identity.keyless is None:
            identity = replace(identity, public_key=str(paths.PUBLIC_KEY))
        expected = ws.context.git_ref if ws.context.tag else None
        argv = verify_argv(DigestRef.parse(image.digest_ref), identity, expected)
        argv = [*argv[: argv.index("--output")], ref]  # the human form: by tag, no JSON
        ui.info(f"  verify:   {' '.join(env)} {shlex.join(argv)}".replace("   ", "  "))
