"""The vulnerability gate: Trivy's JSON report in, a verdict out. Pure.

Every finding is counted per severity; only findings at the policy's `fail_on` severities block,
and with `ignore_unfixed` a finding with no fixed version is reported but does not block. The ignore
file is applied by Trivy itself (`--ignorefile`); with `--show-suppressed` Trivy also reports what
it suppressed and why (`ExperimentalModifiedFindings`), which `suppressed()` reads so the report
keeps them. An ignore entry past its `expired_at` no longer suppresses anything: `expired_ignores`
finds those entries, so a finding they used to cover says why it blocks again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.spec import SEVERITIES, ScanPolicy

# A fixture DB (the sandbox's, the test bench's) names its data source so: Trivy reports the name
# with every finding (`DataSource.Name`), and a finding from such a DB says it is not real.
FIXTURE_SOURCE_PREFIX = "pipeline fixture DB"


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
    source: str = field(compare=False, default="")  # the advisory's data source (its DB)

    @property
    def has_fix(self) -> bool:
        return bool(self.fixed)

    @property
    def from_fixture(self) -> bool:
        """Planted by a fixture DB, not a real advisory."""
        return self.source.startswith(FIXTURE_SOURCE_PREFIX)


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
                    source=str((vuln.get("DataSource") or {}).get("Name", "")),
                )
            )
    return sorted(found)


@dataclass(frozen=True)
class Suppressed:
    """A finding the ignore file suppressed, with the reason it gives."""

    id: str
    package: str
    severity: str
    platform: str
    statement: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "package": self.package,
            "severity": self.severity,
            "platform": self.platform,
            "statement": self.statement,
            "source": self.source,
        }


def suppressed(report: Mapping[str, Any], platform: str = "") -> list[Suppressed]:
    """Findings Trivy suppressed (`--show-suppressed`), with the ignore file's statement."""
    found: list[Suppressed] = []
    for result in report.get("Results") or []:
        for item in result.get("ExperimentalModifiedFindings") or []:
            if item.get("Type") != "vulnerability":
                continue
            vuln = item.get("Finding") or {}
            found.append(
                Suppressed(
                    id=str(vuln.get("VulnerabilityID", "?")),
                    package=str(vuln.get("PkgName", "?")),
                    severity=str(vuln.get("Severity", "UNKNOWN")).upper(),
                    platform=platform,
                    statement=str(item.get("Statement") or "no statement"),
                    source=str(item.get("Source") or ""),
                )
            )
    return sorted(found, key=lambda s: (s.id, s.package, s.platform))


def expired_ignores(document: Any, today: dt.date) -> dict[str, str]:
    """Vulnerability ids whose ignore entry (Trivy's YAML ignore file, already parsed) expired
    before `today`: id -> the expiry date. Such entries suppress nothing any more."""
    expired: dict[str, str] = {}
    entries = document.get("vulnerabilities") if isinstance(document, Mapping) else None
    for entry in entries or []:
        if not isinstance(entry, Mapping) or "id" not in entry:
            continue
        value = entry.get("expired_at")
        when = value if isinstance(value, dt.date) else _date(value)
        if when is not None and when < today:
            expired[str(entry["id"])] = when.isoformat()
    return expired


def _date(value: object) -> dt.date | None:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def describe(
    verdict: str, counts: Mapping[str, int], unfixed_allowed: int, suppressed_count: int
) -> str:
    """One line for people: `pass: CRITICAL 0, HIGH 4 (4 unfixed, allowed: ignore_unfixed), …`."""
    parts = []
    for severity in reversed(SEVERITIES[1:]):  # CRITICAL … LOW
        text = f"{severity} {counts.get(severity, 0)}"
        parts.append(text)
    line = f"{verdict}: {', '.join(parts)}"
    notes = []
    if unfixed_allowed:
        notes.append(f"{unfixed_allowed} unfixed at a failing severity, allowed by ignore_unfixed")
    if suppressed_count:
        notes.append(f"{suppressed_count} suppressed by the ignore file")
    return line + (f" ({'; '.join(notes)})" if notes else "")


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
