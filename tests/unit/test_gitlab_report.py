"""GitLab's container-scanning report: real scan times, the image reference in
`location.image` (GitLab's security dashboard groups findings by it), the OS from Trivy."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from pipeline import gate
from pipeline.engine.scan import GitlabFinding, os_of, write_gitlab_report

DIGEST = "sha256:" + "a" * 64


def test_report_names_the_image_and_the_scan_times(tmp_path: Path) -> None:
    finding = gate.Finding(
        severity_rank=-4,
        id="CVE-2099-0001",
        package="bash",
        installed="5.2.15-2+b13",
        fixed="5.2.99-1",
        severity="CRITICAL",
        title="planted",
        platform="linux/arm64",
    )
    image = f"127.0.0.1:5000/acme/app@{DIGEST}"
    report = {"Metadata": {"OS": {"Family": "debian", "Name": "12.15"}}}
    started = dt.datetime(2026, 12, 2, 6, 57, 46, tzinfo=dt.UTC)
    ended = started + dt.timedelta(seconds=12)
    path = tmp_path / "gl.json"
    write_gitlab_report(path, [GitlabFinding(finding, image, os_of(report))], started, ended)
    document = json.loads(path.read_text())
    assert document["scan"]["start_time"] == "2026-12-02T06:57:46"
    assert document["scan"]["end_time"] == "2026-12-02T06:57:58"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", document["scan"]["start_time"])
    (entry,) = document["vulnerabilities"]
    assert entry["location"]["image"] == image
    assert entry["location"]["operating_system"] == "debian 12.15"
    assert entry["severity"] == "Critical"
    assert os_of({}) == "unknown"
