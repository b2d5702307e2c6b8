"""Report: `dist/release.json` for machines, a table for people, the Markdown summary
(`dist/summary.md`, and `$GITHUB_STEP_SUMMARY` on GitHub) and a dotenv file for later GitLab jobs.

Every run writes them, failed runs included, and they always describe the same run (its id is in
all three and in the state file): a run first marks them `running`, then rewrites them with its
outcome (`pass`, `failed` with the step and the error line, or `interrupted`). A run killed
outright leaves `running`, which says plainly that it did not finish. Rendering is pure.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from pipeline import paths, ui
from pipeline.gate import describe
from pipeline.secrets import redact
from pipeline.state import State


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    """One process's run: what it set out to do and how it ended."""

    steps: tuple[str, ...]
    commit: str
    version: str | None
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    started_at: str = field(default_factory=now)
    status: str = "running"  # running | pass | failed | interrupted
    failed_step: str | None = None
    error: str | None = None
    finished_at: str | None = None
    seconds: float | None = None  # the process's own time, from its start to its end
    peak_rss_mib: float | None = None  # the peak memory of this process (not of its tools)


def release_text(image: Mapping[str, Any]) -> str:
    """How an image came to be in the release: built, reused, or unchanged since a version."""
    if image.get("error"):
        return f"failed ({image['error']})"
    if image.get("unchanged_since"):
        return f"unchanged since {image['unchanged_since']}"
    if image.get("reused"):
        return "reused (this commit's release)"
    return "built" if image.get("index_digest") else "not built"


def critical_path(state: State) -> float:
    """The run's critical path from its step timings: the steps every release runs one after
    another (setup, preflight, merge, publish), plus the longest chain of image steps, an
    image's build starting when the builds of the spec images it is built FROM have ended."""
    fixed = sum(state.timings.get(step, 0.0) for step in ("setup", "preflight", "merge", "publish"))
    images = state.images
    built: dict[str, float] = {}

    def build_end(name: str, seen: frozenset[str] = frozenset()) -> float:
        if name not in built:
            image = images[name]
            start = max(
                (build_end(n, seen | {name}) for n in image.needs if n in images and n not in seen),
                default=0.0,
            )
            built[name] = start + image.timings.get("build", 0.0)
        return built[name]

    chains = [
        build_end(name) + image.timings.get("scan", 0.0) + image.timings.get("sign", 0.0)
        for name, image in images.items()
    ]
    return round(fixed + max(chains, default=0.0), 2)


def build_report(
    run: Run,
    state: State | None,
    *,
    registry: str | None,
    throwaway_key: bool,
    retries: int,
) -> dict[str, Any]:
    images = []
    for name, image in sorted((state.images if state else {}).items()):
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
        data["release"] = release_text(data)
        data.pop("layout", None)
        images.append(data)
    database = next(
        (image.scan.database for image in (state.images.values() if state else []) if image.scan),
        None,
    )
    return {
        "run": asdict(run),
        "status": run.status,
        "version": state.version if state else run.version,
        "commit": state.commit if state else run.commit,
        "context": state.context if state else {},
        "registry": registry,
        "images": images,
        "database": database,
        "public_key": state.public_key if state else None,
        "throwaway_key": throwaway_key,
        "timings_seconds": state.timings if state else {},
        "critical_path_seconds": critical_path(state) if state else None,
        "registry_retries": retries,
    }


def _headline(report: Mapping[str, Any]) -> str:
    run = report.get("run") or {}
    status = report.get("status", "running")
    text = f"## Release {report.get('version') or '(no version)'} of `{str(report['commit'])[:12]}`"
    if status == "pass":
        return text
    if status == "running":
        return text + " — did not finish (running, or killed)"
    where = f" in {run['failed_step']}" if run.get("failed_step") else ""
    return text + f" — {status.upper()}{where}"


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [_headline(report), ""]
    run = report.get("run") or {}
    if run.get("error"):
        lines += [f"> error: {run['error']}", ""]
    if report["images"]:
        lines += [
            "| Image | Release | Digest | Tags | Scan | Signed | Time |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
    for image in report["images"]:
        scan_text = scan_line(image.get("scan") or {})
        tags = ", ".join(f"`{t['name']}`" for t in image.get("tags", [])) or "—"
        lines.append(
            f"| `{image['repository']}` | {image.get('release') or release_text(image)} | "
            f"`{image.get('index_digest') or '—'}` | {tags} | "
            f"{scan_text} | {'yes' if image.get('verified') else 'no'} | "
            f"{_times(image.get('timings') or {})} |"
        )
    database = report.get("database")
    if database:
        fixture = " (**fixture DB**: not real advisories)" if database.get("fixture") else ""
        lines += [
            "",
            f"Trivy DB: `{database.get('source')}` {database.get('digest') or ''}, updated "
            f"{database.get('updated_at') or 'unknown'}{fixture}",
        ]
    timings = report.get("timings_seconds") or {}
    if timings:
        text = "Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        if report.get("critical_path_seconds"):
            text += f"; critical path {report['critical_path_seconds']:.1f}s"
        lines += ["", text]
    return "\n".join(lines) + "\n"


def _times(timings: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) or "—"


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def render_dotenv(report: Mapping[str, Any]) -> str:
    """KEY=value lines for GitLab's dotenv report (values without spaces or quotes)."""
    run = report.get("run") or {}
    lines = [
        f"PIPELINE_RUN={run.get('id', '')}",
        f"PIPELINE_STATUS={report.get('status', '')}",
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
        reused = " (reused)" if image.get("reused") else ""
        signed = f"yes{reused}" if image.get("verified") else "no"
        facts = {
            "release": image.get("release") or release_text(image),
            "repository": image["repository"],
            "digest": image.get("index_digest") or "—",
            "platforms": ", ".join(sorted(image.get("platforms", {}))) or "—",
            "scan": scan_line(image.get("scan") or {}),
            "signed": signed,
            "tags": " ".join(t["name"] for t in image.get("tags", [])) or "—",
            "time": _times(image.get("timings") or {}),
        }
        table.add_row(image["name"], "\n".join(f"{k}: {v}" for k, v in facts.items()))
    return table


def _write(path: Path, text: str) -> None:
    """Atomic: a reader sees the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_all(
    dist: Path,
    run: Run,
    state: State | None,
    environ: Mapping[str, str],
    *,
    registry: str | None = None,
    throwaway_key: bool = False,
    retries: int = 0,
    show: Sequence[str] = (),
) -> dict[str, Any]:
    """release.json, summary.md and release.env for this run (and the step summary on GitHub
    once the run has ended); the table when the run published (`show` holds "publish")."""
    report = build_report(
        run, state, registry=registry, throwaway_key=throwaway_key, retries=retries
    )
    root = dist.parent
    _write(root / paths.REPORT, redact(json.dumps(report, indent=2, sort_keys=True)) + "\n")
    markdown = redact(render_markdown(report))
    _write(root / paths.SUMMARY, markdown)
    _write(root / paths.DOTENV, redact(render_dotenv(report)))
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary and run.status != "running":
        with Path(summary).open("a") as handle:
            handle.write(markdown)
    if "publish" in show and report["images"] and run.status == "pass":
        ui.table(summary_table(report))
    return report
