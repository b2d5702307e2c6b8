"""Retrying transient registry faults: which failures are worth another try, and how long to wait.

Pure apart from the sleep, which callers may replace. Transient: 429 (honouring Retry-After), 5xx,
connection resets and unexpected EOF. Not transient: 401/403/404 and other 4xx, which fail fast.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from pipeline.spec import RetryPolicy

T = TypeVar("T")

# Phrases tools print for faults worth retrying (cosign, buildx, trivy all wrap Go's net/http).
_TRANSIENT_TEXT = re.compile(
    r"(connection reset by peer|unexpected EOF|broken pipe|TLS handshake timeout|"
    r"i/o timeout|server misbehaving|503 Service Unavailable|502 Bad Gateway|"
    r"500 Internal Server Error|504 Gateway Timeout|429 Too Many Requests|TOOMANYREQUESTS|"
    r"status code 5\d\d|status 5\d\d|: 5\d\d |response status code 5\d\d|"
    r"connection refused|EOF$)",
    re.IGNORECASE | re.MULTILINE,
)
_AUTH_TEXT = re.compile(
    r"(401 Unauthorized|403 Forbidden|unauthorized:|authentication required|denied:|"
    r"no basic auth credentials)",
    re.IGNORECASE,
)

# BuildKit writing one blob from two exports at once (a layer that two platforms or two builds on
# one daemon share): containerd refuses the second writer while the first holds the ref, with
# `ref layer-sha256:… locked for 91ms (since …): unavailable` (moby/buildkit#3270). Not the
# registry's fault nor a lost host, and gone on the next try.
_CONTENT_LOCKED = re.compile(r"\bref \S+ locked\b[^\n]*: unavailable", re.IGNORECASE)


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based: the attempt that just failed
    reason: str
    wait: float


def status_is_transient(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def text_is_transient(text: str) -> bool:
    """Whether a tool's error output describes a transient registry fault (not an auth failure)."""
    return bool(_TRANSIENT_TEXT.search(text)) and not _AUTH_TEXT.search(text)


def text_is_content_lock(text: str) -> bool:
    """Whether a build failed on BuildKit's content store being written by another export."""
    return bool(_CONTENT_LOCKED.search(text))


def text_is_auth_failure(text: str) -> bool:
    return bool(_AUTH_TEXT.search(text))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Capped exponential backoff with equal jitter (half fixed, half random), so retries from
    several clients spread out; a server's Retry-After wins (also capped)."""
    cap = policy.max_backoff_seconds
    if retry_after is not None:
        return min(retry_after, cap)
    ceiling = min(cap, policy.initial_backoff_seconds * 2.0 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


class Retrier:
    """Calls an operation until it succeeds, a non-transient error is raised, or attempts run out.

    `classify(exc)` returns (transient?, reason, retry_after) for an exception raised by the
    operation. Each retry is reported through `on_retry` (the engine logs it with its reason).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        on_retry: Callable[[Attempt], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.on_retry = on_retry
        self.sleep = sleep
        self.retries = 0

    def call(
        self,
        operation: Callable[[], T],
        classify: Callable[[Exception], tuple[bool, str, float | None]],
    ) -> T:
        attempt = 1
        while True:
            try:
                return operation()
            except Exception as exc:
                transient, reason, retry_after = classify(exc)
                if not transient or attempt >= self.policy.attempts:
                    raise
                wait = backoff(self.policy, attempt, retry_after=retry_after)
                self.retries += 1
                if self.on_retry is not None:
                    self.on_retry(Attempt(attempt, reason, wait))
                self.sleep(wait)
                attempt += 1
