"""The vulnerability gate: Trivy's JSON report in, a verdict out. Pure.

Every finding is counted per severity; only findings at the policy's `fail_on` severities block,
and with `ignore_unfixed` a finding with no fixed version is reported but does not block. The ignore
file is applied by Trivy itself (`--ignorefile`), so ignored findings never reach this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.spec import SEVERITIES, ScanPolicy


@dataclass(frozen=True, order=True)
class Finding:
    severity_rank: int
    id: str
    package: str
    installed: str
    fixed: str | None
    severity: str
    title: str = field(compare=False)
    platform: str = field(compare=False, default="")

    @property
    def has_fix(self) -> bool:
        return bool(self.fixed)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    counts: Mapping[str, int]  # every severity, every finding (fixed or not)
    blocking: tuple[Finding, ...]
    unfixed: int  # findings at a failing severity that were let through as unfixed

    def summary(self) -> str:
        parts = [f"{sev} {self.counts.get(sev, 0)}" for sev in reversed(SEVERITIES)]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "counts": dict(self.counts),
            "blocking": [
                {
                    "id": f.id,
                    "package": f.package,
                    "installed": f.installed,
                    "fixed": f.fixed,
                    "severity": f.severity,
                    "platform": f.platform,
                }
                for f in self.blocking
            ],
            "unfixed_allowed": self.unfixed,
        }


def findings(report: Mapping[str, Any], platform: str = "") -> list[Finding]:
    """All vulnerabilities of a Trivy JSON report (SchemaVersion 2)."""
    found: list[Finding] = []
    for result in report.get("Results") or []:
        for vuln in result.get("Vulnerabilities") or []:
            severity = str(vuln.get("Severity", "UNKNOWN")).upper()
            if severity not in SEVERITIES:
                severity = "UNKNOWN"
            found.append(
                Finding(
                    severity_rank=-SEVERITIES.index(severity),
                    id=str(vuln.get("VulnerabilityID", "?")),
                    package=str(vuln.get("PkgName", "?")),
                    installed=str(vuln.get("InstalledVersion", "")),
                    fixed=str(vuln.get("FixedVersion") or "") or None,
                    severity=severity,
                    title=str(vuln.get("Title", "")),
                    platform=platform,
                )
            )
    return sorted(found)


def evaluate(all_findings: Iterable[Finding], policy: ScanPolicy) -> Verdict:
    counts = dict.fromkeys(SEVERITIES, 0)
    blocking: list[Finding] = []
    unfixed = 0
    for finding in all_findings:
        counts[finding.severity] += 1
        if finding.severity not in policy.fail_on:
            continue
        if policy.ignore_unfixed and not finding.has_fix:
            unfixed += 1
            continue
        blocking.append(finding)
    return Verdict(
        passed=not blocking, counts=counts, blocking=tuple(sorted(blocking)), unfixed=unfixed
    )


def merge_counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    total = dict.fromkeys(SEVERITIES, 0)
    for verdict in verdicts:
        for severity, count in verdict.counts.items():
            total[severity] += count
    return total
