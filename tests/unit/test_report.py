"""What people read: the release table, the findings table and the Markdown summary, rendered
at a terminal's 80 columns."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.table import Table

from pipeline import gate
from pipeline.engine.report import render_markdown, summary_table
from pipeline.engine.scan import findings_table

DIGEST = "sha256:" + "0123456789abcdef" * 4
REPOSITORY = "127.0.0.1:45123/a-long-team-name/a-rather-long-service-name-for-the-test"
REPORT = {
    "version": "1.2.3",
    "commit": "c" * 40,
    "images": [
        {
            "name": "api",
            "repository": REPOSITORY,
            "index_digest": DIGEST,
            "platforms": {"linux/amd64": "sha256:" + "1" * 64, "linux/arm64": "sha256:" + "2" * 64},
            "scan": {
                "verdict": "pass",
                "counts": {"CRITICAL": 0, "HIGH": 4, "MEDIUM": 0, "LOW": 1},
                "unfixed_allowed": 4,
                "suppressed": [{"id": "CVE-1"}],
            },
            "verified": True,
            "tags": [{"name": "1.2.3"}, {"name": "sha-ccccccc"}],
        }
    ],
}


def _render(table: Table, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(table)
    return out.getvalue()


def _unfolded(text: str) -> str:
    """The table's text with its borders and line breaks removed: folded values join again."""
    return re.sub(r"[\s│┃┏┓┗┛━┡┩└┘─┌┐├┤┼╇╈┳┻╋═║╔╗╚╝╭╮╰╯]+", "", text)


def test_the_release_table_keeps_repository_and_digest_whole_at_80_columns() -> None:
    text = _render(summary_table(REPORT))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    flat = _unfolded(text)
    assert DIGEST in flat
    assert REPOSITORY in flat
    assert "4unfixedatafailingseverity,allowedbyignore_unfixed" in flat


def test_the_findings_table_names_the_image() -> None:
    finding = gate.Finding(
        severity_rank=-4,
        id="CVE-2099-0002",
        package="coreutils",
        installed="9.1-1",
        fixed="9.1-99",
        severity="HIGH",
        title="t",
        platform="linux/arm64",
    )
    text = _render(findings_table([("api", finding)], {"CVE-2099-0002": "2026-01-31"}), 120)
    header = next(line for line in text.splitlines() if "Image" in line)
    assert header.index("Image") < header.index("Platform") < header.index("Severity")
    row = next(line for line in text.splitlines() if "CVE-2099-0002" in line)
    assert "api" in row and "linux/arm64" in row
    assert "ignore entry expired 2026-01-31" in _render(
        findings_table([("api", finding)], {"CVE-2099-0002": "2026-01-31"}), 200
    )


def test_markdown_summary() -> None:
    text = render_markdown(REPORT)
    assert text.startswith("## Release 1.2.3 of `cccccccccccc`")
    assert f"| `{REPOSITORY}` | built | `{DIGEST}` | `1.2.3`, `sha-ccccccc` |" in text
    assert "allowed by ignore_unfixed" in text
