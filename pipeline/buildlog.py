"""BuildKit's plain progress (`docker buildx build --progress plain`), read line by line. Pure.

Plain progress numbers every step (`#7 [linux/arm64 runtime 2/3] COPY app/ app/`) and then
reports on it by number (`#7 DONE 0.3s`, `#7 CACHED`, `#7 ERROR: …`, `#7 0.412 <output>`). The
engine turns that into one condensed line per finished step, a live status per image and
platform, and, when a step fails, the step's own output: buildx prints it between `------` lines
after the failure, and a test runner's failing test is named from it (unittest, pytest, go test,
jest and the like), not from the first `ERROR:` line, which may well be a cache importer's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_VERTEX = re.compile(r"^#(\d+) \[([^\]]+)\] (.*)$")
_STATUS = re.compile(r"^#(\d+) (DONE [\d.]+s|CACHED|ERROR: .*|CANCELED)$")
_LOG = re.compile(r"^#\d+ \d+\.\d+ (.*)$")
_TIMESTAMP = re.compile(r"^\d+\.\d+ ")
PLATFORM = re.compile(r"^(linux/[a-z0-9]+(?:/v\d)?) ")
# How test runners name a failing test, most specific first.
FAILING_TEST = (
    re.compile(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)"),  # unittest: FAIL: test_x (pkg.Case.test_x)
    re.compile(r"^FAILED (\S+::\S+)"),  # pytest's short summary
    re.compile(r"^_{3,} (\S+) _{3,}$"),  # pytest's failure header
    re.compile(r"^\s*--- FAIL: (\S+)"),  # go test
    re.compile(r"^\s*● (.+?)\s*$"),  # jest
    re.compile(r"^\s*not ok \d+ - (.+)$"),  # TAP
)
TAIL_LINES = 20


@dataclass(frozen=True)
class Step:
    """A step BuildKit names: `[linux/arm64 runtime 2/3] COPY app/ app/`."""

    number: int
    where: str  # inside the brackets: platform, stage and position, or `internal`, `auth`
    what: str  # the instruction or operation

    @property
    def platform(self) -> str | None:
        found = PLATFORM.match(self.where + " ")
        return found.group(1) if found else None

    @property
    def internal(self) -> bool:
        return self.where in ("internal", "auth") or self.where.endswith(" internal")

    @property
    def text(self) -> str:
        return f"[{self.where}] {self.what}"


@dataclass
class Progress:
    """What the build's lines said so far: the steps by number, and the finished ones in order."""

    steps: dict[int, Step] = field(default_factory=dict)

    def feed(self, line: str) -> tuple[Step, str] | None:
        """Read one line; a step that finished (DONE, CACHED, ERROR) comes back with its status,
        a step that started with `started`."""
        line = line.rstrip("\n")
        vertex = _VERTEX.match(line)
        if vertex:
            number = int(vertex.group(1))
            if number not in self.steps:
                step = Step(number, vertex.group(2), vertex.group(3))
                self.steps[number] = step
                return step, "started"
            return None
        status = _STATUS.match(line)
        if status:
            step_found = self.steps.get(int(status.group(1)))
            if step_found is not None:
                return step_found, status.group(2)
        return None


def condensed(step: Step, status: str) -> str | None:
    """The one line a finished step gets in CI logs (None: not worth a line)."""
    if step.internal or status == "started":
        return None
    if status == "CACHED":
        return f"{step.text} (cached)"
    if status.startswith("DONE "):
        return f"{step.text} ({status.removeprefix('DONE ')})"
    return f"{step.text} {status}"


@dataclass(frozen=True)
class Failure:
    """The failing step of a build, from the block buildx prints between `------` lines."""

    step: str  # ` > [test 4/4] RUN …:` without the marks
    output: tuple[str, ...]  # its last lines, timestamps dropped
    test: str | None  # the failing test, when a test runner named one
    error: str  # buildx's own error line (`failed to solve: …`)

    def headline(self) -> str:
        return self.test or self.error


def failure(stderr: str) -> Failure | None:
    """The failing step's own output and the test it names, if the build failed in a step."""
    lines = stderr.splitlines()
    error = _error_line(lines)
    blocks = _blocks(lines)
    if not blocks:
        return None if error is None else Failure("", (), None, error)
    header, body = blocks[-1]
    # The step's own log holds more than buildx's excerpt (its last 10 lines).
    logs = _step_logs(lines, header)
    output = tuple(logs) if logs else tuple(_TIMESTAMP.sub("", line, count=1) for line in body)
    test = failing_test(output)
    return Failure(header, output[-TAIL_LINES:], test, error or header)


def _blocks(lines: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(header, lines) of every `------` block holding a ` > [step]:` header."""
    found: list[tuple[str, list[str]]] = []
    inside = False
    current: list[str] = []
    for line in lines:
        if line.strip() == "------":
            if inside and current and current[0].startswith(" > "):
                found.append((current[0].removeprefix(" > ").rstrip(":"), current[1:]))
            inside = not inside
            current = []
        elif inside:
            current.append(line)
    return found


def _step_logs(lines: Sequence[str], header: str) -> list[str]:
    """The output lines (`#N 0.123 text`) of the step named `header`."""
    numbers = {
        m.group(1)
        for line in lines
        if (m := _VERTEX.match(line)) and f"[{m.group(2)}] {m.group(3)}" == header
    }
    out = []
    for line in lines:
        number = line[1:].split(" ", 1)[0] if line.startswith("#") else ""
        if number in numbers and (m := _LOG.match(line)):
            out.append(m.group(1))
    return out


def failing_test(lines: Iterable[str]) -> str | None:
    for line in lines:
        for pattern in FAILING_TEST:
            found = pattern.match(line)
            if found:
                if pattern is FAILING_TEST[0]:  # 3.11 names the test in the dotted name too
                    name, where = found.group(1), found.group(2)
                    return where if where.endswith(f".{name}") else f"{where}.{name}"
                return found.group(1)
    return None


def _error_line(lines: Sequence[str]) -> str | None:
    """buildx's final error (`ERROR: failed to solve: …`), else its last `ERROR:` line."""
    errors = [line.split("ERROR:", 1)[1].strip() for line in lines if line.startswith("ERROR:")]
    solve = [e for e in errors if e.startswith("failed to solve")]
    chosen = solve[-1] if solve else errors[-1] if errors else None
    return chosen[:300] if chosen else None
