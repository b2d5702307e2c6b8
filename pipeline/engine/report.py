"""Report: `dist/release.json` for machines, a table for people, a Markdown summary for GitHub
(`$GITHUB_STEP_SUMMARY`) and a dotenv file for later GitLab jobs. Rendering is pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from pipeline import paths, ui
from pipeline.engine.workspace import Workspace
from pipeline.gate import describe
from pipeline.state import State


def build_report(
    state: State, *, registry: str, throwaway_key: bool, retries: int
) -> dict[str, Any]:
    images = []
    for name, image in sorted(state.images.items()):
        data = asdict(image)
        data["tags"] = [
            {
                "name": t.name,
                "class": "immutable" if t.immutable else "floating",
                "result": t.result,
                "previous": t.previous,
            }
            for t in image.tags
        ]
        data["name"] = name
        data.pop("layout", None)
        images.append(data)
    return {
        "version": state.version,
        "commit": state.commit,
        "context": state.context,
        "registry": registry,
        "images": images,
        "public_key": state.public_key,
        "throwaway_key": throwaway_key,
        "timings_seconds": state.timings,
        "registry_retries": retries,
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"## Release {report.get('version') or '(no version)'} of `{str(report['commit'])[:12]}`",
        "",
        "| Image | Digest | Tags | Scan | Signed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for image in report["images"]:
        scan_text = scan_line(image.get("scan") or {})
        tags = ", ".join(f"`{t['name']}`" for t in image.get("tags", [])) or "—"
        lines.append(
            f"| `{image['repository']}` | `{image.get('index_digest') or '—'}` | {tags} | "
            f"{scan_text} | {'yes' if image.get('verified') else 'no'} |"
        )
    timings = report.get("timings_seconds") or {}
    if timings:
        lines += ["", "Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())]
    return "\n".join(lines) + "\n"


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def render_dotenv(report: Mapping[str, Any]) -> str:
    """KEY=value lines for GitLab's dotenv report (values without spaces or quotes)."""
    lines = [
        f"PIPELINE_VERSION={report.get('version') or ''}",
        f"PIPELINE_COMMIT={report['commit']}",
    ]
    for image in report["images"]:
        key = _env_name(image["name"])
        lines.append(f"PIPELINE_{key}_DIGEST={image.get('index_digest') or ''}")
        lines.append(f"PIPELINE_{key}_REPOSITORY={image['repository']}")
        lines.append(f"PIPELINE_{key}_TAGS={','.join(t['name'] for t in image.get('tags', []))}")
    return "\n".join(lines) + "\n"


def scan_line(scan: Mapping[str, Any]) -> str:
    if not scan:
        return "not scanned"
    return describe(
        str(scan.get("verdict", "—")),
        scan.get("counts") or {},
        int(scan.get("unfixed_allowed") or 0),
        len(scan.get("suppressed") or []),
    )


def summary_table(report: Mapping[str, Any]) -> Table:
    """One row per image, its facts one per line: repository and digest stay whole (folded,
    never cut) at 80 columns. The full values are also in release.json."""
    table = Table(title=f"Release {report.get('version') or '(no version)'}", show_lines=True)
    table.add_column("Image", no_wrap=True)
    table.add_column("Release", overflow="fold")
    for image in report["images"]:
        signed = (
            "yes" + (" (reused)" if image.get("reused") else "") if image.get("verified") else "no"
        )
        facts = {
            "repository": image["repository"],
            "digest": image.get("index_digest") or "—",
            "platforms": ", ".join(sorted(image.get("platforms", {}))) or "—",
            "scan": scan_line(image.get("scan") or {}),
            "signed": signed,
            "tags": " ".join(t["name"] for t in image.get("tags", [])) or "—",
        }
        table.add_row(image["name"], "\n".join(f"{k}: {v}" for k, v in facts.items()))
    return table


def write_all(ws: Workspace, state: State, environ: Mapping[str, str]) -> dict[str, Any]:
    report = build_report(
        state, registry=ws.registry_host, throwaway_key=ws.throwaway_key, retries=len(ws.retries)
    )
    out = ws.path(paths.REPORT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    ws.path(paths.DOTENV).write_text(render_dotenv(report))
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a") as handle:
            handle.write(render_markdown(report))
    ui.table(summary_table(report))
    return report
