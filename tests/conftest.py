"""Test-wide rules.

- Tests under tests/integration/ are marked `integration` automatically; they drive the real tools.
- Every other test is pure: a fixture makes spawning a process fail loudly (cibuildwheel's
  mock_protection), so a unit test can never touch a tool by accident.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


class SpawnForbidden(AssertionError):
    pass


def _forbidden(*_args: object, **_kwargs: object) -> None:
    raise SpawnForbidden(
        "a pure test tried to start a process; mark it integration (tests/integration/)"
    )


@pytest.fixture(autouse=True)
def _forbid_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("integration"):
        return
    monkeypatch.setattr(subprocess.Popen, "__init__", _forbidden)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _forbidden)
