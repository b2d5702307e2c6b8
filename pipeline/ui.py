"""Console output: one Rich console on stderr, everything redacted on the way out.

Machine-readable output (`pipeline tags`, `--json`) goes to stdout through `emit_stdout`;
everything for humans goes to stderr so it never mixes with what scripts read.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline import operation
from pipeline.secrets import redact

console = Console(stderr=True, highlight=False, soft_wrap=True)
# What a command reports as its result (`pipeline preflight`'s findings), for scripts and pipes.
out = Console(highlight=False, soft_wrap=True)


def info(message: str) -> None:
    console.print(escape(redact(message)))


def step(message: str) -> None:
    console.print(f"[bold cyan]==>[/] {escape(redact(message))}")


def ok(message: str) -> None:
    console.print(f"[green]✓[/] {escape(redact(message))}")


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(redact(message))}")


def error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(redact(message))}")


def command(argv_text: str) -> None:
    """Echo a command about to run (already shlex-joined and redacted by the runner)."""
    console.print(f"[dim]+ {escape(argv_text)}[/]")


def table(tbl: Table, *, stdout: bool = False) -> None:
    (out if stdout else console).print(tbl)


def emit_stdout(text: str) -> None:
    sys.stdout.write(redact(text))
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


@contextmanager
def progress(label: str, *, row: tuple[str, str] | None = None) -> Iterator[None]:
    """A spinner with elapsed time for one long step; prints the duration when it ends.

    While a board is up (`board()`: many images at once) the step is shown on its row
    (`row=(image, platform)`, or a row of its own) instead of a spinner of its own."""
    start = time.monotonic()
    active = _BOARD
    with operation.doing(label):
        if active is None:
            with console.status(f"{escape(redact(label))} …", spinner="dots"):
                yield
        else:
            key = row or (label, "")
            active.status(key, label)
            try:
                yield
            finally:
                active.status(key, f"{label} ({time.monotonic() - start:.1f}s)", done=row is None)
    console.print(f"[green]✓[/] {escape(redact(label))} [dim]({time.monotonic() - start:.1f}s)[/]")


@dataclass
class _Row:
    started: float
    text: str
    ended: float | None = None


class Board:
    """One line per image and platform with its current step and elapsed time, live on a
    terminal; in a log (CI, a pipe) the condensed step lines are printed instead."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None

    @property
    def interactive(self) -> bool:
        return console.is_terminal

    def status(self, key: tuple[str, str], text: str, *, done: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = _Row(started=now, text=text)
            row.text = text
            row.ended = now if done else None

    def finish(self, key: tuple[str, str], text: str) -> None:
        self.status(key, text, done=True)

    def line(self, key: tuple[str, str], text: str) -> None:
        """A build step that finished: on its row on a terminal, one log line elsewhere."""
        self.status(key, text)
        if not self.interactive:
            image, platform = key
            where = f"{image} {platform}".strip()
            console.print(f"[dim]  {escape(redact(where))}: {escape(redact(text))}[/]")

    def render(self) -> Group:
        now = time.monotonic()
        grid = Table.grid(padding=(0, 1))
        for _ in range(4):
            grid.add_column(no_wrap=True, overflow="ellipsis")
        with self.lock:
            rows = list(self.rows.items())
        for (image, platform), row in rows:
            seconds = (row.ended or now) - row.started
            mark = "[green]✓[/]" if row.ended is not None else "[cyan]…[/]"
            grid.add_row(
                Text(image, style="bold"),
                Text(platform or "", style="dim"),
                f"{mark} {seconds:5.1f}s",
                Text(redact(row.text)[:100]),
            )
        return Group(grid)


_BOARD: Board | None = None


@contextmanager
def board() -> Iterator[Board]:
    """The board of a run with many images and platforms at once (see `Board`)."""
    global _BOARD  # noqa: PLW0603  (one console, one board)
    previous = _BOARD
    current = Board()
    _BOARD = current
    try:
        if current.interactive:
            with Live(
                get_renderable=current.render,
                console=console,
                refresh_per_second=4,
                transient=False,
            ) as live:
                current.live = live
                yield current
        else:
            yield current
    finally:
        _BOARD = previous


def active_board() -> Board | None:
    return _BOARD
