"""The daemon's pull stream: its error events are what a failed pull reports."""

from pipeline.adapters.docker_engine import stream_errors


def test_progress_events_hold_no_error() -> None:
    events = [
        {"status": "Pulling from tests/github", "id": "sha256:6ac4"},
        {"status": "Download complete", "id": "0f1e"},
        {"status": "Digest: sha256:6ac4"},
    ]
    assert list(stream_errors(events)) == []


def test_the_error_detail_is_the_message() -> None:
    events: list[dict[str, object]] = [
        {"status": "Pulling fs layer", "id": "0f1e"},
        {
            "errorDetail": {"message": "failed to extract layer: already exists"},
            "error": "failed to extract layer: already exists",
        },
    ]
    assert list(stream_errors(events)) == ["failed to extract layer: already exists"]


def test_an_error_without_detail_is_still_reported() -> None:
    assert list(stream_errors([{"error": "manifest unknown"}])) == ["manifest unknown"]
