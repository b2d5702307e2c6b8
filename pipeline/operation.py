"""Naming what the process is doing, for the error boundary's one line.

`with operation.doing("registry: token for acme/web"):` marks an exception that escapes the
block with that operation (the innermost one wins), and the boundary in `pipeline.cli` names it:
`error: unexpected failure during registry: token for acme/web: ValueError: …`. Progress labels
(`pipeline.ui.progress`) name their operation the same way. An exception keeps its mark when a
worker thread's failure is re-raised in the main thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

_ATTRIBUTE = "pipeline_operation"


@contextmanager
def doing(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if getattr(exc, _ATTRIBUTE, None) is None:
            # An exception type with __slots__ cannot be marked: it stays unnamed.
            with contextlib.suppress(AttributeError):
                setattr(exc, _ATTRIBUTE, what)
        raise


def of(exc: BaseException) -> str | None:
    """The operation an exception escaped from, if one was named."""
    value = getattr(exc, _ATTRIBUTE, None)
    return value if isinstance(value, str) else None
