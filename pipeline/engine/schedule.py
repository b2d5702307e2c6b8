"""Many images at once: each image runs its steps (build, scan, sign) in order, images side by
side, an image built FROM another image of the spec only after that one's build.

- At most `workers(spec)` steps run at once: the spec's `build.max_parallel`, never more than the
  machine's cores (each step runs tools that use a core or more of their own).
- Ready steps start in order of how much work waits on them: a build others are built FROM
  first (its own chain and theirs), then the longest chains left.
- The first failure stops the release: no new step starts, the running ones finish (their tools
  are not killed half-way through a push), and the failure is raised once they have. The images
  that did not finish carry the error in the state; nothing is published (publish runs after
  this, for the whole set, or not at all).
- Each finished step's time is recorded per image (`ImageState.timings`) and the state is saved,
  so a CI job re-run continues where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from pipeline import operation, ui
from pipeline.errors import PipelineError
from pipeline.spec import Spec
from pipeline.stages import Step

ImageStep = Callable[[str], None]  # runs one step for the named image


def workers(spec: Spec, cores: int | None = None) -> int:
    available = cores or os.cpu_count() or 1
    wanted = spec.build.max_parallel or available
    return max(1, min(wanted, available))


@dataclass(frozen=True)
class Unit:
    image: str
    step: Step
    index: int  # position of the step in the image's chain


@dataclass
class Span:
    started: float
    ended: float


def run(
    images: Sequence[str],
    steps: Sequence[Step],
    functions: Mapping[Step, ImageStep],
    *,
    needs: Mapping[str, Sequence[str]],
    parallel: int,
    on_done: Callable[[Unit, float, float], None],
    on_failed: Callable[[Unit, BaseException], None],
) -> dict[Step, Span]:
    """Run `steps` for every image, `parallel` at once; `needs[x]` are the images whose build
    must finish before x's build starts (only when this run builds). Returns each step's span
    (first start to last end, monotonic seconds)."""
    scheduler = _Scheduler(images, steps, needs)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="image") as pool:
        while True:
            if scheduler.failure is None:
                for unit in scheduler.ready()[: max(0, parallel - len(scheduler.running))]:
                    scheduler.start(unit, pool.submit(_execute, functions, unit))
            if not scheduler.running:
                break
            done, _ = wait(scheduler.running, return_when=FIRST_COMPLETED)
            for future in done:
                unit, started = scheduler.finish(future)
                error = future.exception()
                if error is not None:
                    on_failed(unit, error)
                    scheduler.failed(error)
                else:
                    scheduler.advance(unit)
                    on_done(unit, started, time.time())
    if scheduler.failure is not None:
        left = [n for n in images if scheduler.next_step[n] < len(steps)]
        if len(left) > 1:
            ui.warn(f"stopped: {', '.join(left)} did not finish (one failure stops the release)")
        raise scheduler.failure
    return scheduler.spans


def _execute(functions: Mapping[Step, ImageStep], unit: Unit) -> None:
    with operation.doing(f"the {unit.step} step of {unit.image}"):
        functions[unit.step](unit.image)


class _Scheduler:
    def __init__(
        self, images: Sequence[str], steps: Sequence[Step], needs: Mapping[str, Sequence[str]]
    ) -> None:
        self.images = list(images)
        self.steps = list(steps)
        self.building = "build" in steps
        self.waiting_on = {n: {d for d in needs.get(n, ()) if d in images} for n in images}
        # What waits on an image's build: the chains of every image built FROM it, at any depth.
        self.dependents = {n: self._dependents(n) for n in images}
        self.next_step = dict.fromkeys(images, 0)
        self.built: set[str] = set()
        self.running: dict[Future[None], tuple[Unit, float, float]] = {}
        self.spans: dict[Step, Span] = {}
        self.failure: BaseException | None = None

    def ready(self) -> list[Unit]:
        busy = {unit.image for unit, _, _ in self.running.values()}
        found = []
        for name in self.images:
            index = self.next_step[name]
            if index >= len(self.steps) or name in busy:
                continue
            step = self.steps[index]
            if step == "build" and self.building and not self.waiting_on[name] <= self.built:
                continue
            found.append(Unit(name, step, index))
        # The longest work waiting on a unit first (its own steps left, and for a build the
        # chains of the images built FROM it), then spec order.
        return sorted(found, key=lambda u: -self.rank(u))

    def rank(self, unit: Unit) -> int:
        own = len(self.steps) - unit.index
        if unit.step != "build" or not self.building:
            return own
        return own + len(self.steps) * len(self.dependents[unit.image])

    def _dependents(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            for other in self.images:
                if current in self.waiting_on[other] and other not in found:
                    found.add(other)
                    todo.append(other)
        return found

    def start(self, unit: Unit, future: Future[None]) -> None:
        started = time.monotonic()
        self.running[future] = (unit, started, time.time())
        span = self.spans.setdefault(unit.step, Span(started, started))
        span.started = min(span.started, started)

    def finish(self, future: Future[None]) -> tuple[Unit, float]:
        """The unit of a finished future and when it started (epoch seconds)."""
        unit, _, wall = self.running.pop(future)
        self.spans[unit.step].ended = max(self.spans[unit.step].ended, time.monotonic())
        return unit, wall

    def advance(self, unit: Unit) -> None:
        self.next_step[unit.image] += 1
        if unit.step == "build":
            self.built.add(unit.image)

    def failed(self, error: BaseException) -> None:
        # The first failure wins, but an expected error (one clear line) over an unexpected one.
        if self.failure is None or (
            not isinstance(self.failure, PipelineError) and isinstance(error, PipelineError)
        ):
            self.failure = error
