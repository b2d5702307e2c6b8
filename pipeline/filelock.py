"""An exclusive advisory lock on a file, for what two runs on one machine must not do at once
(promote one repository, provision the sandbox, refresh one Trivy cache). I/O: the lock file."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `path` (created, with its folder) locked until the block ends; waits for a holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
