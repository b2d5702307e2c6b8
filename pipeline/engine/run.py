"""Running steps: the order lives in the stage table (`pipeline.stages`), not in nox or CI.

`run_stages(("preflight", "build", "scan", "sign", "publish"), options)` is a whole release in one
process; CI runs the same steps one per job, handing `dist/state.json` between them. Every step
saves the state when it ends, so a failed step leaves what came before it usable and a re-run
continues.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline import operation, paths, ui
from pipeline import state as state_file
from pipeline.adapters.cosign import verify_argv
from pipeline.context import ReleaseContext
from pipeline.engine import build, merge, publish, report, scan, sign
from pipeline.engine.loading import load_release
from pipeline.engine.workspace import Workspace, open_workspace
from pipeline.errors import GitError, PipelineError, SpecError
from pipeline.preflight import enforce
from pipeline.refs import DigestRef
from pipeline.secrets import redact
from pipeline.specload import LoadedSpec
from pipeline.stages import Step
from pipeline.state import State
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
    enforce(ws.loaded, {image.name: build.build_args(ws, image) for image in ws.spec.images})


STEP_FUNCTIONS: Mapping[Step, StepFunction] = {
    "preflight": _preflight,
    "build": lambda ws, st, opts: build.run_build(ws, st, only_platforms=opts.platforms),
    "merge": lambda ws, st, _opts: merge.run_merge(ws, st),
    "scan": lambda ws, st, _opts: scan.run_scan(ws, st),
    "sign": lambda ws, st, _opts: sign.run_sign(ws, st),
    "publish": lambda ws, st, _opts: publish.run_publish(ws, st),
}
# Steps that start a new state file (the others continue the previous step's).
STARTS_STATE: frozenset[Step] = frozenset({"preflight", "build", "merge"})


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


@dataclass
class _Outcome:
    """What a run got to, for the reports its `finally` writes."""

    run: report.Run
    state: State | None = None
    ws: Workspace | None = None
    step: str | None = None

    def end(self, status: str, error: str | None) -> None:
        self.run.status = status
        self.run.failed_step = self.step if status != "pass" else None
        self.run.error = redact(error).replace("\n", " ") if error else None
        self.run.finished_at = report.now()


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
    if context.dirty and "build" in steps and not options.allow_dirty:
        raise GitError(
            "the working tree has uncommitted changes: a release must be built from a commit "
            "(commit or stash them, or pass --allow-dirty for a throw-away build)"
        )
    if options.platforms:  # checked before any login or build, like every other argument
        for image in loaded.spec.images:
            build.select_platforms(image, options.platforms)
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
        else:
            state = state_file.load(path, commit=context.sha)
        state.run_id, state.started_at = outcome.run.id, outcome.run.started_at
        outcome.state = state
        for step in steps:
            outcome.step = step
            started = time.monotonic()
            try:
                with operation.doing(f"the {step} step"):
                    STEP_FUNCTIONS[step](ws, state, options)
            finally:
                state.done(step, time.monotonic() - started)
                state_file.save(state, path)
        outcome.step = None
        if "publish" in steps and ws.push:
            where_to_look(ws, state)
        return state


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
