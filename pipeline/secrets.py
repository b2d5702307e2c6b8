"""Values that must never be printed or written: the one redaction list for the whole process.

Secrets are registered by value when they are read (registry passwords from the environment
variables the spec names, COSIGN_PASSWORD, tokens). Everything that prints or writes text
(`pipeline.ui`, the runner, the error handler, report writers) passes it through `redact`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words; refuse to treat them as secrets

# Environment variables whose values are secret whatever the spec says.
WELL_KNOWN_SECRET_ENV = (
    "COSIGN_PASSWORD",
    "COSIGN_PRIVATE_KEY",
    "SIGSTORE_ID_TOKEN",
    "GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "CI_JOB_TOKEN",
    "CI_REGISTRY_PASSWORD",
    "TRIVY_PASSWORD",
    "PIPELINE_REGISTRY_PASSWORD",
    "DOCKER_PASSWORD",
)


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        if value and len(value) >= _MIN_LEN:
            with self._lock:
                self._values.add(value)

    def add_from_env(self, names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        for name in names:
            self.add(env.get(name))

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


REDACTOR = Redactor()
REDACTOR.add_from_env(WELL_KNOWN_SECRET_ENV)


def redact(text: str) -> str:
    return REDACTOR.redact(text)


def register(value: str | None) -> None:
    REDACTOR.add(value)
