"""Console output: one Rich console on stderr, everything redacted on the way out.

Machine-readable output (`pipeline tags`, `--json`) goes to stdout through `emit_stdout`;
everything for humans goes to stderr so it never mixes with what scripts read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
def progress(label: str) -> Iterator[None]:
    """A spinner with elapsed time for one long step; prints the duration when it ends."""
    start = time.monotonic()
    with operation.doing(label), console.status(f"{escape(redact(label))} …", spinner="dots"):
        yield
    console.print(f"[green]✓[/] {escape(redact(label))} [dim]({time.monotonic() - start:.1f}s)[/]")
