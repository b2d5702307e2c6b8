from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pipeline.gate import describe, evaluate, expired_ignores, findings, merge_counts, suppressed
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


def test_suppressed_findings_keep_their_statement() -> None:
    report = {
        "Results": [
            {
                "Vulnerabilities": [],
                "ExperimentalModifiedFindings": [
                    {
                        "Type": "vulnerability",
                        "Status": "ignored",
                        "Statement": "not reachable in our use",
                        "Source": ".trivyignore.yaml",
                        "Finding": {
                            "VulnerabilityID": "CVE-9",
                            "PkgName": "bash",
                            "Severity": "critical",
                        },
                    },
                    {"Type": "secret", "Finding": {"RuleID": "aws"}},
                ],
            }
        ]
    }
    (only,) = suppressed(report, "linux/arm64")
    assert only.to_json() == {
        "id": "CVE-9",
        "package": "bash",
        "severity": "CRITICAL",
        "platform": "linux/arm64",
        "statement": "not reachable in our use",
        "source": ".trivyignore.yaml",
    }


def test_expired_ignore_entries() -> None:
    document = {
        "vulnerabilities": [
            {"id": "CVE-OLD", "expired_at": dt.date(2026, 1, 31)},
            {"id": "CVE-TEXT", "expired_at": "2025-06-01"},
            {"id": "CVE-TODAY", "expired_at": "2026-12-02"},  # still valid on its day
            {"id": "CVE-LATER", "expired_at": "2027-01-01"},
            {"id": "CVE-FOREVER"},
            "not an entry",
        ]
    }
    assert expired_ignores(document, dt.date(2026, 12, 2)) == {
        "CVE-OLD": "2026-01-31",
        "CVE-TEXT": "2025-06-01",
    }
    assert expired_ignores(None, dt.date(2026, 12, 2)) == {}


@pytest.mark.parametrize(
    ("unfixed", "hidden", "line"),
    [
        (0, 0, "pass: CRITICAL 0, HIGH 4, MEDIUM 0, LOW 1"),
        (
            4,
            0,
            "pass: CRITICAL 0, HIGH 4, MEDIUM 0, LOW 1 "
            "(4 unfixed at a failing severity, allowed by ignore_unfixed)",
        ),
        (
            4,
            2,
            "pass: CRITICAL 0, HIGH 4, MEDIUM 0, LOW 1 (4 unfixed at a failing severity, "
            "allowed by ignore_unfixed; 2 suppressed by the ignore file)",
        ),
    ],
)
def test_describe_says_what_was_let_through(unfixed: int, hidden: int, line: str) -> None:
    counts = {"CRITICAL": 0, "HIGH": 4, "MEDIUM": 0, "LOW": 1}
    assert describe("pass", counts, unfixed, hidden) == line


def test_a_finding_knows_it_came_from_a_fixture_db() -> None:
    def report(source: str) -> dict[str, object]:
        vuln = {
            "VulnerabilityID": "CVE-2099-0001",
            "PkgName": "bash",
            "Severity": "CRITICAL",
            "FixedVersion": "5.2.99-1",
            "DataSource": {"ID": "debian", "Name": source},
        }
        return {"Results": [{"Vulnerabilities": [vuln]}]}

    (planted,) = findings(report("pipeline fixture DB (planted advisories, not real)"))
    (real,) = findings(report("Debian Security Tracker"))
    assert planted.from_fixture and not real.from_fixture
    assert planted == real, "the source is not part of a finding's identity"
