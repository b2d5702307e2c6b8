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
        scan = image.get("scan") or {}
        counts = scan.get("counts") or {}
        scan_text = (
            f"{scan.get('verdict', '—')} (C {counts.get('CRITICAL', 0)}, H {counts.get('HIGH', 0)})"
        )
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


def summary_table(report: Mapping[str, Any]) -> Table:
    table = Table(title=f"Release {report.get('version') or '(no version)'}")
    for column in ("Image", "Digest", "Platforms", "Scan", "Signed", "Tags"):
        table.add_column(column)
    for image in report["images"]:
        scan = image.get("scan") or {}
        counts = scan.get("counts") or {}
        table.add_row(
            image["repository"],
            (image.get("index_digest") or "—")[:19] + "…",
            ", ".join(sorted(image.get("platforms", {}))),
            f"{scan.get('verdict', '—')}: C{counts.get('CRITICAL', 0)} H{counts.get('HIGH', 0)} "
            f"M{counts.get('MEDIUM', 0)} L{counts.get('LOW', 0)}",
            "yes" + (" (reused)" if image.get("reused") else "") if image.get("verified") else "no",
            " ".join(t["name"] for t in image.get("tags", [])) or "—",
        )
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
