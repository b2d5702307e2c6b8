"""The guard itself: a pure test that spawns a process fails, whichever way it tries."""

from __future__ import annotations

import os
import subprocess

import pytest
import sh

from tests.conftest import SpawnForbidden


@pytest.mark.parametrize(
    "spawn",
    [
        lambda: subprocess.run(["true"], check=False),
        lambda: os.system("true"),  # noqa: S605 (the call under test)
        lambda: sh.Command("true")(),  # noqa: PLW0108
    ],
    ids=["subprocess", "os.system", "sh"],
)
def test_pure_tests_cannot_spawn(spawn: object) -> None:
    with pytest.raises(SpawnForbidden):
        spawn()  # type: ignore[operator]
