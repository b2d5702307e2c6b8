from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import SpecError, StateError
from pipeline.state import ImageState, ScanState, State, TagState, load, save


def _state() -> State:
    state = State(commit="c" * 40, version="1.2.3", context={"event": "tag"})
    state.images["web"] = ImageState(
        name="web",
        repository="127.0.0.1:5000/acme/web",
        index_digest="sha256:" + "1" * 64,
        platforms={"linux/amd64": "sha256:" + "2" * 64},
        scan=ScanState(verdict="pass", counts={"HIGH": 0}, blocking=[], unfixed_allowed=1),
        tags=[TagState(name="1.2.3", immutable=True, result="created")],
    )
    state.done("build", 1.234)
    state.done("build", 1.0)
    return state


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "dist" / "state.json"
    save(_state(), path)
    again = load(path, commit="c" * 40)
    assert again == _state()
    assert again.timings == {"build": 2.23}
    assert again.images["web"].digest_ref == "127.0.0.1:5000/acme/web@sha256:" + "1" * 64
    assert not path.with_suffix(".json.tmp").exists()


def test_refuses_another_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save(_state(), path)
    with pytest.raises(
        StateError, match="written for commit cccccccccccc, but this is dddddddddddd"
    ):
        load(path, commit="d" * 40)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a pipeline state file (Expecting value"),
        ("[]", "not a pipeline state file ("),
        (
            '{"schema": 99, "commit": "x", "version": null, "context": {}}',
            "state schema 99 is not 1",
        ),
        ("{nope", "not a pipeline state file (Expecting property name"),
    ],
)
def test_rejects_garbage(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    # The whole message from its start: the path alone (".../state.json") must not satisfy it.
    with pytest.raises(StateError, match=f"^{re.escape(f'{path}: {reason}')}"):
        load(path)


def test_missing_state_names_the_stage(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    message = f"{path}: no state file; run the earlier stage (build) first"
    with pytest.raises(StateError, match=f"^{re.escape(message)}$"):
        load(path)


def test_digest_ref_requires_a_build() -> None:
    with pytest.raises(SpecError, match="run `build` first"):
        _ = ImageState(name="web", repository="r/web").digest_ref
