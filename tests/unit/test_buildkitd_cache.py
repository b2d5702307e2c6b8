"""When the cached buildkit build counts (tests/support/buildkitd.py): only a stamp naming both
binaries, beside both files. A cache from before buildctl was built (a stamp without
`binaries`) makes `ensure_buildkit_binaries` build again: here that shows as the process it
tries to start (pure tests may start none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SpawnForbidden
from tests.support.buildkitd import BINARIES, ensure_buildkit_binaries, ensure_buildkitd


def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: dict[str, object]) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    bin_dir = tmp_path / "pipeline" / "buildkitd" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "buildkitd.json").write_text(json.dumps(stamp))
    return bin_dir


def test_a_stamp_naming_both_binaries_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _cache(
        tmp_path, monkeypatch, {"binaries": {name: {"sha256": "0" * 64} for name in BINARIES}}
    )
    for name in BINARIES:
        (bin_dir / name).write_bytes(b"\x7fELF")
    found = ensure_buildkit_binaries()
    assert (found.buildkitd, found.buildctl) == (bin_dir / "buildkitd", bin_dir / "buildctl")
    assert ensure_buildkitd() == bin_dir / "buildkitd"


@pytest.mark.parametrize(
    ("stamp", "files"),
    [
        ({"source": "docker.io", "version": "v0.13.2"}, ("buildkitd",)),  # before buildctl
        ({"binaries": {"buildkitd": {}, "buildctl": {}}}, ("buildkitd",)),  # buildctl deleted
        ({"binaries": {"buildkitd": {}}}, BINARIES),  # the stamp names one only
    ],
    ids=["old-cache", "file-missing", "stamp-incomplete"],
)
def test_an_incomplete_cache_is_built_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stamp: dict[str, object],
    files: tuple[str, ...],
) -> None:
    bin_dir = _cache(tmp_path, monkeypatch, stamp)
    for name in files:
        (bin_dir / name).write_bytes(b"\x7fELF")
    with pytest.raises(SpawnForbidden):
        ensure_buildkit_binaries()
    # The failed attempt leaves the old binaries alone and its work folder removed.
    assert sorted(path.name for path in bin_dir.iterdir()) == sorted([*files, "buildkitd.json"])
    assert not (bin_dir.parent / "work").exists()
