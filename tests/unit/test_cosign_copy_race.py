"""cosign copy's write race is retried (pipeline.adapters.cosign.COPY_RACE), and only that: the
line below is what a mirror copy printed when it lost the race (a CI run, 2026-12-02)."""

from __future__ import annotations

from pipeline.adapters.cosign import COPY_RACE
from pipeline.retry import text_is_transient

SEEN = (
    "Error: error during command execution: PUT http://127.0.0.1:49313/v2/mirrored/app/manifests/"
    "sha256-ff0e2a0930e955e3809f6cd7e613c2faeec0dd56591fd7d9dac23903f811c3c9: multiple errors "
    "returned: DIGEST_INVALID: provided digest did not match uploaded content; "
    "MANIFEST_BLOB_UNKNOWN: blob unknown to registry; sha256:5fa3a3ab2a12227a47259a7761cc09db19d8"
)


def test_the_race_seen_is_recognised() -> None:
    assert COPY_RACE.search(SEEN)


def test_it_is_not_a_transient_fault_for_every_command() -> None:
    assert not text_is_transient(SEEN), "a push of missing blobs elsewhere is not retried"
    assert not COPY_RACE.search("Error: GET …/manifests/1.0.0: MANIFEST_UNKNOWN: manifest unknown")
