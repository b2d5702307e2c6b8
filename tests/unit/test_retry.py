from __future__ import annotations

import pytest

from pipeline.retry import (
    Attempt,
    Retrier,
    backoff,
    parse_retry_after,
    status_is_transient,
    text_is_auth_failure,
    text_is_content_lock,
    text_is_transient,
)
from pipeline.spec import RetryPolicy

POLICY = RetryPolicy(attempts=4, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (599, True),
        (200, False),
        (401, False),
        (403, False),
        (404, False),
        (400, False),
    ],
)
def test_status_classes(status: int, transient: bool) -> None:
    assert status_is_transient(status) is transient


@pytest.mark.parametrize(
    ("text", "transient"),
    [
        ("read tcp 127.0.0.1:5000: connection reset by peer", True),
        ("Get https://r/v2/: unexpected EOF", True),
        ("PUT https://r/v2/x/manifests/y: 503 Service Unavailable", True),
        ("received unexpected HTTP status: 500 Internal Server Error", True),
        ("GET https://r/v2/: 429 Too Many Requests", True),
        ("unauthorized: authentication required", False),
        ("denied: requested access to the resource is denied", False),
        ("MANIFEST_UNKNOWN: manifest unknown", False),
    ],
)
def test_text_classes(text: str, transient: bool) -> None:
    assert text_is_transient(text) is transient


def test_auth_text() -> None:
    assert text_is_auth_failure("GET https://r/v2/: 401 Unauthorized")
    assert not text_is_auth_failure("connection reset by peer")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=1_445_412_490.0) == expected


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (4, 2.0, 4.0), (9, 2.0, 4.0)],
)
def test_backoff_is_capped_exponential_with_jitter(attempt: int, low: float, high: float) -> None:
    assert backoff(POLICY, attempt, rand=lambda: 0.0) == low
    assert backoff(POLICY, attempt, rand=lambda: 1.0) == high


def test_retry_after_wins_but_is_capped() -> None:
    assert backoff(POLICY, 1, retry_after=2.0) == 2.0
    assert backoff(POLICY, 1, retry_after=60.0) == 4.0


class Flaky(Exception):
    pass


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    return isinstance(exc, Flaky), str(exc), None


def test_retrier_retries_transient_then_succeeds() -> None:
    calls: list[int] = []
    seen: list[Attempt] = []
    slept: list[float] = []

    def op() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky("HTTP 503")
        return "ok"

    retrier = Retrier(POLICY, on_retry=seen.append, sleep=slept.append)
    assert retrier.call(op, _classify) == "ok"
    assert len(calls) == 3
    assert [a.number for a in seen] == [1, 2]
    assert all(a.reason == "HTTP 503" for a in seen)
    assert len(slept) == 2 and retrier.retries == 2


def test_retrier_gives_up_after_attempts() -> None:
    def op() -> None:
        raise Flaky("reset")

    retrier = Retrier(POLICY, sleep=lambda _s: None)
    with pytest.raises(Flaky):
        retrier.call(op, _classify)
    assert retrier.retries == POLICY.attempts - 1


def test_retrier_fails_fast_on_permanent_errors() -> None:
    calls: list[int] = []

    def op() -> None:
        calls.append(1)
        raise ValueError("401")

    with pytest.raises(ValueError):
        Retrier(POLICY, sleep=lambda _s: None).call(op, _classify)
    assert calls == [1]


LOCKED = (
    "ERROR: (*service).Write failed: rpc error: code = Unavailable desc = ref "
    "layer-sha256:087964ed25b23cdacdabdbd47cc41d801a896eaeeb7a4820967607055d7bd3a5 locked for "
    "241.257202ms (since 2026-12-02 14:10:29.564387605 +0000 UTC m=+223.229556131): unavailable"
)


def test_a_busy_content_store_is_retried_but_is_not_the_registry() -> None:
    """Two exports writing one layer at once (moby/buildkit#3270): worth another build, and
    never reported as a registry that kept failing."""
    assert text_is_content_lock(LOCKED)
    assert text_is_content_lock(
        "failed to load cache: ref buildkit/1/layer-sha256:30a locked: unavailable"
    )
    assert not text_is_transient(LOCKED)
    assert not text_is_content_lock(
        "ERROR: failed to receive status: rpc error: code = Unavailable"
    )
