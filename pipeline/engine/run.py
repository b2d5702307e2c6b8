"""Running stages: the order lives here, not in nox or CI.

`run_stages(["build", "scan", "sign", "publish"])` is a whole release in one process; CI runs the
same stages one per job, handing `dist/state.json` between them. Every stage saves the state when
it ends, so a failed stage leaves what came before it usable and a re-run continues.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import paths, ui
from pipeline import state as state_file
from pipeline.context import ReleaseContext
from pipeline.errors import SpecError
from pipeline.specload import LoadedSpec, load
from pipeline.state import State
from pipeline.tags import TagSet

if TYPE_CHECKING:
    from pipeline.engine.workspace import Workspace

BUILD_STAGES = frozenset({"build", "release"})


@dataclass(frozen=True)
class Options:
    spec: str | None = None
    registry: str | None = None
    allow_dirty: bool = False
    platforms: tuple[str, ...] = ()
    dist: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def load_release(options: Options) -> tuple[LoadedSpec, ReleaseContext, TagSet]:
    from pipeline import tags
    from pipeline.context import load_context

    loaded = load(options.spec)
    context = load_context(loaded, options.environ)
    tagset = tags.compute(loaded.spec.tags, context)
    for warning in tagset.warnings:
        ui.warn(warning)
    return loaded, context, tagset


def _stage_functions() -> dict[str, Callable[[Workspace, State, Options], None]]:
    from pipeline.engine import build, merge, publish, scan, sign

    return {
        "preflight": _preflight,
        "build": lambda ws, st, opts: build.run_build(ws, st, only_platforms=opts.platforms),
        "merge": lambda ws, st, _opts: merge.run_merge(ws, st),
        "scan": lambda ws, st, _opts: scan.run_scan(ws, st),
        "sign": lambda ws, st, _opts: sign.run_sign(ws, st),
        "publish": lambda ws, st, _opts: publish.run_publish(ws, st),
    }


def _preflight(ws: Workspace, _state: State, _options: Options) -> None:
    from pipeline.engine.build import build_args
    from pipeline.preflight import enforce

    enforce(ws.loaded, {image.name: build_args(ws, image) for image in ws.spec.images})


def state_path(ws: Workspace, stages: Sequence[str], options: Options) -> Path:
    if "build" in stages and options.platforms and len(stages) == 1:
        if len(options.platforms) != 1:
            raise SpecError("--platform: a per-platform build job takes exactly one platform")
        return ws.path(paths.platform_state(options.platforms[0]))
    return ws.path(paths.STATE)


def run_stages(stages: Sequence[str], options: Options) -> State:
    loaded, context, tagset = load_release(options)
    if context.dirty and "build" in stages and not options.allow_dirty:
        raise SpecError(
            "the working tree has uncommitted changes: a release must be built from a commit "
            "(commit or stash them, or pass --allow-dirty for a throw-away build)"
        )
    if options.platforms:  # checked before any login or build, like every other argument
        from pipeline.engine.build import select_platforms

        for image in loaded.spec.images:
            select_platforms(image, options.platforms)
    from pipeline.engine.workspace import open_workspace  # the tools: only when stages run

    functions = _stage_functions()
    with open_workspace(
        loaded,
        context,
        tagset,
        registry_override=options.registry,
        environ=options.environ,
        dist=options.dist,
        stages=frozenset(stages),
    ) as ws:
        path = state_path(ws, stages, options)
        if stages[0] in ("build", "preflight") or stages[0] == "merge":
            state = State(commit=context.sha, version=tagset.version, context=context.to_json())
        else:
            state = state_file.load(path, commit=context.sha)
        for stage in stages:
            started = time.monotonic()
            try:
                functions[stage](ws, state, options)
            finally:
                state.done(stage, time.monotonic() - started)
                state_file.save(state, path)
        if "publish" in stages:
            from pipeline.engine.report import write_all

            write_all(ws, state, options.environ)
            if ws.push:
                where_to_look(ws, state)
        return state


def where_to_look(ws: Workspace, state: State) -> None:
    ui.step("where to look")
    ui.info(f"  registry: https://{ws.registry_host}/v2/_catalog")
    ui.info(f"  report:   {ws.path(paths.REPORT)}")
    for image in state.images.values():
        tag = next((t.name for t in image.tags if t.immutable), None)
        ref = f"{image.repository}:{tag}" if tag else image.digest_ref
        env = []
        if "SSL_CERT_FILE" in ws.runner.env and ws.sandbox is not None:
            env.append(f"SSL_CERT_FILE={ws.runner.env['SSL_CERT_FILE']}")
        if "DOCKER_CONFIG" in ws.runner.env and ws.sandbox is not None:
            env.append(f"DOCKER_CONFIG={ws.runner.env['DOCKER_CONFIG']}")
        argv = ["cosign", "verify", "--key", ws.identity.public_key or "cosign.pub"]
        if not ws.identity.tlog:
            argv.append("--insecure-ignore-tlog=true")
        argv.append(ref)
        ui.info(f"  verify:   {' '.join(env)} {shlex.join(argv)}".replace("   ", "  "))
