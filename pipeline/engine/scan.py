"""Scan: Trivy on every platform image by digest, concurrently, then the gate.

Each platform gets a JSON report (every package), and from it SARIF, a CycloneDX SBOM and the
cosign-vuln predicate (`trivy convert`: the image is fetched once). The gate applies the spec's
policy to the JSON; a failure prints the blocking findings and raises GateFailed after the
reports and the state are written, so CI still uploads them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from pipeline import gate, oci, paths, predicates, ui
from pipeline.adapters.trivy import ScanRequest, Trivy
from pipeline.engine.workspace import Workspace
from pipeline.errors import EnvironmentProblem, GateFailed
from pipeline.filelock import locked
from pipeline.state import ImageState, ScanState, State

# In the Trivy cache: which DB artifact (digest) it holds, written once Trivy fetched it.
DB_MARKER = "pipeline-source.json"
REPORT_SUFFIXES = {
    "json": ".json",
    "sarif": ".sarif",
    "cyclonedx": ".cdx.json",
    "cosign-vuln": ".vuln.json",
}


@dataclass(frozen=True)
class Job:
    image: str
    platform: str
    target: str
    input_layout: bool
    folder: Path
    repository: str  # host/path of the image
    digest: str  # the platform image's digest
    image_id: str | None = None  # the image's config digest, when known (from the layout)

    def path(self, fmt: str) -> Path:
        return self.folder / f"{paths.platform_slug(self.platform)}{REPORT_SUFFIXES[fmt]}"


def jobs_for(ws: Workspace, name: str, image: ImageState) -> list[Job]:
    """One scan per platform image of `image` (none for a reused digest: scanned when built)."""
    if image.reused or image.unchanged_since:
        return []
    jobs: list[Job] = []
    folder = ws.dist / "scan" / name
    layout = _layout_of(image)
    for platform, digest in sorted(image.platforms.items()):
        image_id: str | None = None
        if layout is not None:
            # Trivy reads the first image of a layout whatever --platform says: each
            # platform gets a view of the layout that names only its own image.
            view, image_id = oci.Layout(layout).platform_view(
                platform, layout / ".platforms" / paths.platform_slug(platform)
            )
            target, from_layout = str(view), True
        else:
            target, from_layout = f"{image.repository}@{digest}", False
        jobs.append(
            Job(name, platform, target, from_layout, folder, image.repository, digest, image_id)
        )
    return jobs


def _layout_of(image: ImageState) -> Path | None:
    """The build's OCI layout, when it is on this machine and holds this very index."""
    if not image.layout or not image.index_digest:
        return None
    root = Path(image.layout)
    return root if oci.Layout(root).has_blob(image.index_digest) else None


def drop_pushed_layout(image: ImageState) -> None:
    """A pushed image needs no local copy once scanned (a pull request's layout is its image)."""
    if image.layout:
        shutil.rmtree(image.layout, ignore_errors=True)
        image.layout = None


def vulnerability_db(ws: Workspace) -> dict[str, Any]:
    """Trivy's DB, fetched once per run (before the first scan; the others wait for it), and
    what it is (source, digest, UpdatedAt, fixture)."""
    with ws.db_lock:
        if ws.db_record is None:
            database = fetch_db(ws, ws.trivy())
            if database.get("fixture"):
                ui.warn(
                    f"scanning with the fixture Trivy DB ({database['source']}): not real "
                    "advisories"
                )
            ws.db_record = database
        return ws.db_record


def fetch_db(ws: Workspace, trivy: Trivy) -> dict[str, Any]:
    """Trivy's DB into the run's cache, the very artifact the registry serves now; its facts.

    Trivy fetches only when its copy's NextUpdate has passed, so a mirror that published a new DB
    (or the fixture, whose NextUpdate is 2099) would leave the cache a DB behind while the report
    names the registry's digest. The cache's marker says which artifact it holds: when that is
    not the one served now, Trivy's metadata goes, and Trivy fetches again. One run at a time
    per cache (a lock), so a scan in flight never sees the DB swapped."""
    cache = ws.trivy_cache
    wanted = ws.database.digest if ws.database else None
    marker = cache / "db" / DB_MARKER
    label = f"trivy DB from {ws.db_repository or 'its default repository'}"
    with ui.progress(label), locked(cache / ".lock"):
        if wanted is not None and _held(marker) != wanted:
            (cache / "db" / "metadata.json").unlink(missing_ok=True)
        trivy.download_db(cache, ws.db_repository)
        if wanted is not None:
            marker.write_text(json.dumps({"digest": wanted}) + "\n")
    return ws.database.record(cache) if ws.database else {}


def _held(marker: Path) -> str | None:
    try:
        return str(json.loads(marker.read_text())["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_scan(ws: Workspace, state: State) -> None:
    """Scan every image of the state one after another (`schedule` runs them side by side)."""
    for name in sorted(state.images):
        scan_step(ws, state, name)


def scan_step(ws: Workspace, state: State, name: str) -> None:
    """Scan every platform image of one image at once, then the gate for that image."""
    image = state.images[name]
    jobs = jobs_for(ws, name, image)
    if not jobs:
        why = f"unchanged since {image.unchanged_since}" if image.unchanged_since else "reused"
        ui.ok(f"{name}: nothing to scan ({why}: its attested scan was verified)")
        return
    database = vulnerability_db(ws)
    trivy = ws.trivy()

    def scan_one(job: Job) -> tuple[Job, dict[str, Any]]:
        return job, scan_platform(ws, trivy, job, database)

    started = dt.datetime.now(dt.UTC)
    label = f"{name}: trivy on {', '.join(j.platform for j in jobs)}"
    with ws.state_lock:
        smoke = ws.smoke_tests.pop(name, None)
    with (
        ui.progress(label, row=(name, "")),
        ThreadPoolExecutor(max_workers=min(len(jobs), 4) + 1) as pool,
    ):
        # The build's smoke test, when it left it for now, runs beside the scans.
        smoked = pool.submit(smoke) if smoke is not None else None
        results = list(pool.map(scan_one, jobs))
        if smoked is not None:
            smoked.result()
    if ws.push:
        drop_pushed_layout(image)
    verdicts: list[tuple[Job, gate.Verdict, list[gate.Suppressed]]] = []
    found_here: list[GitlabFinding] = []
    for job, report in results:
        found = gate.findings(report, job.platform)
        reference = f"{image.repository}@{image.platforms[job.platform]}"
        found_here.extend(GitlabFinding(f, reference, os_of(report)) for f in found)
        verdicts.append(
            (job, gate.evaluate(found, ws.spec.scan), gate.suppressed(report, job.platform))
        )
    scanned = _scan_state(verdicts, ws)
    scanned.database = database
    image.scan = scanned
    with ws.state_lock:
        ws.findings[name] = found_here
        ws.scan_started = ws.scan_started or started
        everything = [f for image_name in sorted(ws.findings) for f in ws.findings[image_name]]
        write_gitlab_report(
            ws.path(paths.GITLAB_SCANNING_REPORT),
            everything,
            ws.scan_started,
            dt.datetime.now(dt.UTC),
        )
    ui.info(f"  {name}: {scanned.describe()}")
    failed = [(name, f) for _, v, _ in verdicts for f in v.blocking]
    if failed:
        expired = expired_ignores(ignore_file(ws))
        ui.table(findings_table(failed, expired))
        _, worst = failed[0]
        note = (
            f"; its entry in {ws.spec.scan.ignore_file} expired on {expired[worst.id]}"
            if worst.id in expired
            else ""
        )
        if worst.from_fixture:
            note += f"; a planted advisory of a fixture Trivy DB ({worst.source}), not a real one"
        raise GateFailed(
            f"vulnerability gate: {len(failed)} finding(s) at {', '.join(ws.spec.scan.fail_on)} "
            f"(worst: {worst.id} in {worst.package} {worst.installed} of {name} on "
            f"{worst.platform}, fixed in {worst.fixed or 'no release yet'}{note}); "
            "nothing was signed or tagged"
        )


def scan_platform(
    ws: Workspace, trivy: Trivy, job: Job, database: Mapping[str, Any]
) -> dict[str, Any]:
    """One platform image: the JSON report (checked to be of this image), then SARIF, the SBOM
    (named after the image) and the cosign-vuln predicate (with the DB it was scanned with)."""
    ignore = ignore_file(ws)
    converted = [f for f in ("sarif", "cyclonedx") if f in ws.spec.scan.formats]
    if "cyclonedx" in ws.spec.sign.attestations and "cyclonedx" not in converted:
        converted.append("cyclonedx")  # attested even when not kept as a report format
    report = trivy.scan(
        ScanRequest(
            target=job.target,
            platform=job.platform,
            output=job.path("json"),
            cache_dir=analysis_cache(ws, job),
            analysis_cache=True,
            ignore_file=ignore,
            timeout_seconds=ws.spec.scan.timeout_seconds,
            input_layout=job.input_layout,
        )
    )
    check_scanned(job, report)
    for fmt in [*converted, "cosign-vuln"]:
        trivy.convert(job.path("json"), fmt, job.path(fmt))
    _rewrite(job.path("cosign-vuln"), lambda doc: predicates.stamp_vuln(doc, database))
    if "cyclonedx" in converted:
        _rewrite(
            job.path("cyclonedx"),
            lambda doc: predicates.name_sbom(doc, job.repository, job.digest, job.platform),
        )
    return report


def analysis_cache(ws: Workspace, job: Job) -> Path:
    """Trivy's cache for one image and platform: its layer analysis kept between releases (a
    file of its own, so scans at once never wait on one lock), the run's DB linked in."""
    folder = ws.trivy_cache / "analysis" / f"{job.image}-{paths.platform_slug(job.platform)}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "db"
    if not link.is_symlink():
        shutil.rmtree(link, ignore_errors=True)
        link.symlink_to(ws.trivy_cache / "db", target_is_directory=True)
    return folder


def ignore_file(ws: Workspace) -> Path | None:
    return ws.loaded.resolve(ws.spec.scan.ignore_file) if ws.spec.scan.ignore_file else None


def check_scanned(job: Job, report: Mapping[str, Any]) -> None:
    """The report is of the image the job asked for: its platform (and, from a layout, its very
    config digest). A scanner that read another image must never pass the gate for this one."""
    metadata = report.get("Metadata") or {}
    config = metadata.get("ImageConfig") or {}
    os_name, arch, *variant = job.platform.split("/")
    seen = f"{config.get('os')}/{config.get('architecture')}"
    expected = f"{os_name}/{arch}"
    if variant and config.get("variant"):
        seen, expected = f"{seen}/{config.get('variant')}", job.platform
    if seen != expected or (job.image_id and metadata.get("ImageID") != job.image_id):
        raise EnvironmentProblem(
            f"trivy scanned the {seen} image {metadata.get('ImageID')} for {job.image} "
            f"{job.platform} ({job.image_id or job.digest}): its verdict is refused"
        )


def _rewrite(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2) + "\n")


def _scan_state(
    verdicts: list[tuple[Job, gate.Verdict, list[gate.Suppressed]]], ws: Workspace
) -> ScanState:
    counts = gate.merge_counts(v for _, v, _ in verdicts)
    blocking = [b for _, v, _ in verdicts for b in v.to_json()["blocking"]]
    reports = {
        job.platform: {
            fmt: str(job.path(fmt).relative_to(ws.dist.parent))
            for fmt in ("json", "sarif", "cyclonedx", "cosign-vuln")
            if job.path(fmt).exists()
        }
        for job, _, _ in verdicts
    }
    return ScanState(
        verdict="pass" if not blocking else "fail",
        counts=counts,
        blocking=blocking,
        unfixed_allowed=sum(v.unfixed for _, v, _ in verdicts),
        reports=reports,
        suppressed=[s.to_json() for _, _, hidden in verdicts for s in hidden],
    )


def expired_ignores(ignore_file: Path | None) -> dict[str, str]:
    """Entries of the ignore file past their `expired_at` (today, UTC): id -> date."""
    if ignore_file is None or not ignore_file.is_file():
        return {}
    try:
        document = yaml.safe_load(ignore_file.read_text())
    except yaml.YAMLError:
        return {}
    return gate.expired_ignores(document, dt.datetime.now(dt.UTC).date())


def findings_table(found: list[tuple[str, gate.Finding]], expired: dict[str, str]) -> Table:
    table = Table(title="Findings that block the release", show_lines=False)
    for column in ("Image", "Platform", "Severity", "ID", "Package", "Installed", "Fixed in"):
        table.add_column(column, overflow="fold")
    notes = bool(expired) or any(f.from_fixture for _, f in found)
    if notes:
        table.add_column("Note", overflow="fold")
    for image, f in found:
        row = [image, f.platform, f.severity, f.id, f.package, f.installed, f.fixed or "—"]
        if notes:
            why = [f"ignore entry expired {expired[f.id]}"] if f.id in expired else []
            why += ["fixture DB: not a real advisory"] if f.from_fixture else []
            row.append("; ".join(why))
        table.add_row(*row)
    return table


@dataclass(frozen=True)
class GitlabFinding:
    finding: gate.Finding
    image: str  # the image reference GitLab shows: repository@<platform manifest digest>
    operating_system: str  # `debian 12.5`, from the report's Metadata.OS


def os_of(report: dict[str, Any]) -> str:
    found = (report.get("Metadata") or {}).get("OS") or {}
    return " ".join(str(found[k]) for k in ("Family", "Name") if found.get(k)) or "unknown"


def gitlab_time(moment: dt.datetime) -> str:
    """GitLab's report time format: `2026-12-02T06:57:46`, UTC, no zone suffix."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def write_gitlab_report(
    path: Path, entries: list[GitlabFinding], started: dt.datetime, ended: dt.datetime
) -> None:
    """GitLab's container-scanning report (schema 15): one entry per finding and platform;
    `location.image` is the scanned image's reference, the times are when the scan ran."""
    vulnerabilities = [
        {
            "id": gate_id(f),
            "name": f.title or f.id,
            "description": f.title or f.id,
            "severity": f.severity.capitalize() if f.severity != "UNKNOWN" else "Unknown",
            "solution": f"Upgrade {f.package} to {f.fixed}" if f.fixed else "No fix available yet",
            "location": {
                "dependency": {"package": {"name": f.package}, "version": f.installed},
                "operating_system": entry.operating_system,
                "image": entry.image,
            },
            "identifiers": [{"type": "cve", "name": f.id, "value": f.id}],
        }
        for entry in entries
        for f in (entry.finding,)
    ]
    document = {
        "version": "15.0.7",
        "scan": {
            "type": "container_scanning",
            "status": "success",
            "analyzer": {
                "id": "trivy",
                "name": "Trivy",
                "version": "0.76.0",
                "vendor": {"name": "Aqua Security"},
            },
            "scanner": {
                "id": "trivy",
                "name": "Trivy",
                "version": "0.76.0",
                "vendor": {"name": "Aqua Security"},
            },
            "start_time": gitlab_time(started),
            "end_time": gitlab_time(ended),
        },
        "vulnerabilities": vulnerabilities,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def gate_id(f: gate.Finding) -> str:

    return hashlib.sha256(f"{f.id}|{f.package}|{f.platform}".encode()).hexdigest()[:32]
