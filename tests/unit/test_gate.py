from __future__ import annotations

from typing import Any

import pytest

from pipeline.gate import evaluate, findings, merge_counts
from pipeline.spec import ScanPolicy


def _report(*vulns: tuple[str, str, str | None]) -> dict[str, Any]:
    return {
        "SchemaVersion": 2,
        "Results": [
            {
                "Target": "img (debian 12.15)",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": vid,
                        "PkgName": "pkg",
                        "InstalledVersion": "1.0",
                        "FixedVersion": fixed or "",
                        "Severity": sev,
                        "Title": "t",
                    }
                    for vid, sev, fixed in vulns
                ],
            },
            {"Target": "python-pkg", "Vulnerabilities": None},
        ],
    }


REPORT = _report(
    ("CVE-1", "CRITICAL", "2.0"),
    ("CVE-2", "HIGH", "2.0"),
    ("CVE-3", "HIGH", None),
    ("CVE-4", "LOW", "2.0"),
)


@pytest.mark.parametrize(
    ("policy", "passed", "blocking", "unfixed"),
    [
        (ScanPolicy(), False, ["CVE-1", "CVE-2"], 1),
        (ScanPolicy(ignore_unfixed=False), False, ["CVE-1", "CVE-2", "CVE-3"], 0),
        (ScanPolicy(fail_on=("CRITICAL",)), False, ["CVE-1"], 0),
        (ScanPolicy(fail_on=("MEDIUM",)), True, [], 0),
        (ScanPolicy(fail_on=("LOW",)), False, ["CVE-4"], 0),
        (ScanPolicy(fail_on=()), True, [], 0),
    ],
)
def test_gate_follows_policy(
    policy: ScanPolicy, passed: bool, blocking: list[str], unfixed: int
) -> None:
    verdict = evaluate(findings(REPORT), policy)
    assert verdict.passed is passed
    assert [f.id for f in verdict.blocking] == blocking
    assert verdict.unfixed == unfixed


def test_counts_cover_every_finding_whatever_the_policy() -> None:
    verdict = evaluate(findings(REPORT, "linux/arm64"), ScanPolicy(fail_on=()))
    assert verdict.counts == {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 0, "HIGH": 2, "CRITICAL": 1}
    assert verdict.summary() == "CRITICAL 1, HIGH 2, MEDIUM 0, LOW 1, UNKNOWN 0"


def test_findings_sorted_most_severe_first_and_keep_platform() -> None:
    found = findings(REPORT, "linux/arm64")
    assert [f.severity for f in found] == ["CRITICAL", "HIGH", "HIGH", "LOW"]
    assert {f.platform for f in found} == {"linux/arm64"}
    assert found[2].fixed is None


def test_empty_and_unknown_severity() -> None:
    assert evaluate(findings({"SchemaVersion": 2}), ScanPolicy()).passed
    odd = findings(_report(("CVE-9", "weird", "1")))
    assert odd[0].severity == "UNKNOWN"


def test_merge_counts() -> None:
    a = evaluate(findings(REPORT), ScanPolicy())
    assert merge_counts([a, a])["HIGH"] == 4


def test_verdict_json() -> None:
    data = evaluate(findings(REPORT, "linux/amd64"), ScanPolicy()).to_json()
    assert data["verdict"] == "fail"
    assert data["blocking"][0] == {
        "id": "CVE-1",
        "package": "pkg",
        "installed": "1.0",
        "fixed": "2.0",
        "severity": "CRITICAL",
        "platform": "linux/amd64",
    }
