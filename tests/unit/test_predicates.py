"""The predicates a release attests (pipeline/predicates.py): pure documents in and out."""

from __future__ import annotations

from typing import Any

from pipeline import predicates

DATABASE: dict[str, Any] = {
    "source": "127.0.0.1:5000/bench/trivy-db:2",
    "digest": "sha256:" + "ab" * 32,
    "updated_at": "2026-01-01T00:00:00Z",
    "fixture": True,
}
TRIVY_VULN: dict[str, Any] = {
    "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
    "scanner": {
        "uri": "pkg:github/aquasecurity/trivy@0.58.1",
        "version": "0.58.1",
        "db": {"uri": "", "version": ""},
        "result": {"SchemaVersion": 2, "Results": []},
    },
    "metadata": {"scanStartedOn": "2026-12-02T09:00:00Z", "scanFinishedOn": "2026-12-02T09:00:01Z"},
}


def as_cosign_keeps_it(predicate: dict[str, Any]) -> dict[str, Any]:
    """What `cosign attest --type vuln` signs: the predicate decoded into cosign's
    CosignVulnPredicate struct and encoded again (sigstore/cosign
    pkg/cosign/attestation/attestation.go: Invocation{parameters,uri,event_id,builder.id},
    Scanner{uri,version,db{uri,version},result}, Metadata{scanStartedOn,scanFinishedOn}); every
    other key is dropped, `result` is kept whole."""
    scanner = predicate["scanner"]
    return {
        "invocation": {k: predicate["invocation"].get(k) for k in TRIVY_VULN["invocation"]},
        "scanner": {
            "uri": scanner["uri"],
            "version": scanner["version"],
            "db": {"uri": scanner["db"]["uri"], "version": scanner["db"]["version"]},
            "result": scanner["result"],
        },
        "metadata": dict(predicate["metadata"]),
    }


def test_the_db_is_named_in_cosigns_own_fields() -> None:
    stamped = predicates.stamp_vuln(TRIVY_VULN, DATABASE)
    assert stamped["scanner"]["db"] == {
        "uri": f"oci://{DATABASE['source']}@{DATABASE['digest']}",
        "version": "2026-01-01T00:00:00Z",
    }
    assert TRIVY_VULN["scanner"]["db"] == {"uri": "", "version": ""}  # the input is not changed


def test_the_fixture_mark_survives_cosigns_re_encoding() -> None:
    signed = as_cosign_keeps_it(predicates.stamp_vuln(TRIVY_VULN, DATABASE))
    assert predicates.scanned_with_fixture(signed)
    facts = signed["scanner"]["result"][predicates.DB_FACTS]
    assert facts == {
        "source": DATABASE["source"],
        "digest": DATABASE["digest"],
        "updated_at": "2026-01-01T00:00:00Z",
        "fixture": True,
    }
    assert signed["scanner"]["result"]["SchemaVersion"] == 2  # Trivy's report is kept beside it


def test_a_real_db_is_not_a_fixture() -> None:
    real = {**DATABASE, "fixture": False}
    assert not predicates.scanned_with_fixture(
        as_cosign_keeps_it(predicates.stamp_vuln(TRIVY_VULN, real))
    )
    assert not predicates.scanned_with_fixture(TRIVY_VULN)  # never stamped: no claim
    assert not predicates.scanned_with_fixture({"scanner": {"result": "not a report"}})


def test_a_tagless_source_is_named_without_a_digest() -> None:
    stamped = predicates.stamp_vuln(TRIVY_VULN, {"source": "mirror.example/trivy-db:2"})
    assert stamped["scanner"]["db"]["uri"] == "oci://mirror.example/trivy-db:2"
    assert stamped["scanner"]["result"][predicates.DB_FACTS]["digest"] is None
