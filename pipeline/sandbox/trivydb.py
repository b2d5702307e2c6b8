"""The fixture Trivy DB: a readable YAML source -> a real bbolt file -> `db.tar.gz` -> an OCI
artifact in a registry, which Trivy downloads with `--db-repository` (its real download path, the
way air-gapped companies mirror the public DB).

The sandbox serves `data/trivy-db.yaml`: a valid DB with no advisory, so a clean app passes the
default gate offline. Tests that need advisories build and publish their own source (any YAML in
the same shape) with `build_db(runner, text)` / `ensure_published(..., text=...)`. A fixture's
data source is named `pipeline fixture DB …`, so a finding it produced says where it came from.

The bbolt file is written by a 60-line Go program of ours (`data/boltwrite.go`) built once with
Debian's Go and bbolt sources; everything else is Python.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.adapters.registry import Manifest, RegistryClient
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.oci import digest_of
from pipeline.sandbox.cache import cache_dir
from pipeline.sandbox.registry import RegistryServer

DB_LAYER = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
DB_CONFIG = "application/vnd.aquasec.trivy.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FIXTURE_ANNOTATION = "dev.pipeline.fixture"
DB_TAG = "2"  # Trivy appends :2 (its DB schema) to a --db-repository without a tag
GO_PATH = "/usr/share/gocode"
SEVERITY_BY_NUMBER = {0: "UNKNOWN", 1: "LOW", 2: "MEDIUM", 3: "HIGH", 4: "CRITICAL"}

# Fixed dates: the same fixture gives the same bytes. NextUpdate far ahead: Trivy never refreshes.
METADATA = {
    "Version": 2,
    "NextUpdate": "2099-01-01T00:00:00Z",
    "UpdatedAt": "2026-01-01T00:00:00Z",
    "DownloadedAt": "2026-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Planted:
    id: str
    source_package: str
    severity: str
    fixed_version: str | None


def fixture_text() -> str:
    """The sandbox's DB source (its data source named `pipeline.gate.FIXTURE_SOURCE_PREFIX …`)."""
    return resources.files("pipeline.sandbox").joinpath("data/trivy-db.yaml").read_text()


def to_description(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Trivy's fixture shape (`bucket:` / `pairs:` with `key:`/`value:` or nested `bucket:`)
    -> the JSON the Go writer reads (`buckets` with `pairs` and nested `buckets`)."""

    def bucket(entry: dict[str, Any]) -> dict[str, Any]:
        pairs, children = [], []
        for item in entry.get("pairs") or []:
            if "bucket" in item:
                children.append(bucket(item))
            else:
                pairs.append({"key": str(item["key"]), "value": item["value"]})
        return {"name": str(entry["bucket"]), "pairs": pairs, "buckets": children}

    return {"buckets": [bucket(entry) for entry in entries]}


def planted(text: str | None = None) -> tuple[Planted, ...]:
    """The advisories the fixture plants, read back from the same YAML the DB is made from."""
    entries: list[dict[str, Any]] = yaml.safe_load(text or fixture_text())
    details = {
        item["key"]: item["value"]
        for entry in entries
        if entry["bucket"] == "vulnerability"
        for item in entry.get("pairs") or []
    }
    found = []
    for entry in entries:
        if not entry["bucket"].startswith("debian "):
            continue
        for package in entry.get("pairs") or []:
            for advisory in package.get("pairs") or []:
                detail = details[advisory["key"]]
                found.append(
                    Planted(
                        id=advisory["key"],
                        source_package=package["bucket"],
                        severity=detail.get("Severity")
                        or SEVERITY_BY_NUMBER[detail["VendorSeverity"]["debian"]],
                        fixed_version=advisory["value"].get("FixedVersion") or None,
                    )
                )
    return tuple(sorted(found, key=lambda p: p.id))


PLANTED = planted()  # what the sandbox's own DB plants: nothing


def _writer(runner: Runner) -> Path:
    """The Go bbolt writer, compiled once per source version."""
    source = resources.files("pipeline.sandbox").joinpath("data/boltwrite.go").read_bytes()
    folder = cache_dir() / "bin"
    binary = folder / f"boltwrite-{hashlib.sha256(source).hexdigest()[:12]}"
    if binary.is_file():
        return binary
    work = folder / "boltwrite-src"
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.go").write_bytes(source)
    runner.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=work,
        env={
            "GO111MODULE": "off",
            "GOPATH": f"{folder / 'gopath'}:{GO_PATH}",
            "GOCACHE": str(folder / "gocache"),
            "GOFLAGS": "-mod=mod",
        },
        quiet=True,
        error_message="could not build the Trivy DB fixture writer (needs Debian golang-go and "
        "golang-github-coreos-bbolt-dev)",
    )
    return binary


def _tar_gz(files: dict[str, bytes]) -> bytes:
    """A reproducible tar.gz: fixed order, times and owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 1_767_225_600  # 2026-01-01
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def build_db(runner: Runner, text: str | None = None) -> Path:
    """`db.tar.gz` for a fixture source (default: the sandbox's), cached by its content and the
    writer's."""
    text = fixture_text() if text is None else text
    writer = _writer(runner)
    key = hashlib.sha256(text.encode() + writer.name.encode()).hexdigest()[:16]
    folder = cache_dir() / "trivydb" / key
    archive = folder / "db.tar.gz"
    if archive.is_file():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "trivy.db"
    database.unlink(missing_ok=True)
    description = json.dumps(to_description(yaml.safe_load(text)))
    runner.run([str(writer), str(database)], stdin=description, quiet=True)
    payload = _tar_gz(
        {
            "trivy.db": database.read_bytes(),
            "metadata.json": json.dumps(METADATA, sort_keys=True).encode(),
        }
    )
    archive.write_bytes(payload)
    return archive


def artifact_manifest(layer: bytes, config: bytes) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DB_CONFIG,
        "config": {"mediaType": DB_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {
                "mediaType": DB_LAYER,
                "digest": digest_of(layer),
                "size": len(layer),
                "annotations": {"org.opencontainers.image.title": "db.tar.gz"},
            }
        ],
        "annotations": {
            "org.opencontainers.image.created": METADATA["UpdatedAt"],
            # Marks the artifact as a fixture: releases outside the sandbox refuse it.
            FIXTURE_ANNOTATION: "true",
        },
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def publish(client: RegistryClient, repository: str, archive: Path) -> str:
    """Push `db.tar.gz` as Trivy's DB artifact at `repository:2`; a no-op when already there."""
    layer = archive.read_bytes()
    config = b"{}"
    body = artifact_manifest(layer, config)
    digest = digest_of(body)
    if client.digest_of(repository, DB_TAG) == digest:
        return digest
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    stored = client.put_manifest(repository, DB_TAG, Manifest(digest, OCI_MANIFEST, body))
    if stored != digest:
        raise EnvironmentProblem(f"the registry stored the Trivy DB as {stored}, not {digest}")
    return digest


def ensure_published(
    registry: RegistryServer, repository: str, runner: Runner, *, text: str | None = None
) -> str:
    """Build (cached) and publish a fixture DB (default: the sandbox's) into a registry."""
    return publish(registry.client(), repository, build_db(runner, text))
