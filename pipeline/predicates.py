"""The predicates a release attests, as data. Pure: documents in, documents out.

- The CycloneDX SBOM names its component after the image it describes (`repo@sha256:…`, with a
  `pkg:oci` purl), never after a path on the build machine.
- The cosign-vuln predicate records the vulnerability DB it was scanned with (source, digest,
  UpdatedAt) and whether that DB was the sandbox's fixture, so a verifier can refuse it.
- The SLSA v1 provenance (`https://slsa.dev/provenance/v1`) binds the image to its source
  repository, commit, spec and build arguments, its base images by digest, and the run that
  built it (a CI run's URL, or this host).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
# Where a cosign-vuln predicate carries the DB facts cosign keeps (inside the Trivy report).
DB_FACTS = "dev.pipeline.db"
BUILD_TYPE = "urn:pipeline-release:buildx-release:v1"


def oci_purl(repository: str, digest: str, platform: str | None = None) -> str:
    """`pkg:oci/NAME@sha256%3A…?repository_url=HOST/PATH[&arch=…]` (the purl spec's OCI type)."""
    host_path = repository
    name = repository.rsplit("/", 1)[-1]
    purl = f"pkg:oci/{name}@{quote(digest, safe='')}?repository_url={quote(host_path, safe='/:')}"
    if platform:
        os_name, arch, *variant = platform.split("/")
        purl += f"&arch={arch}" + (f"&variant={variant[0]}" if variant else "") + f"&os={os_name}"
    return purl


def name_sbom(
    document: Mapping[str, Any], repository: str, digest: str, platform: str
) -> dict[str, Any]:
    """The SBOM with its top component named after the image (`repository@digest`)."""
    out = copy.deepcopy(dict(document))
    metadata = out.setdefault("metadata", {})
    component = metadata.setdefault("component", {})
    component["name"] = f"{repository}@{digest}"
    component["purl"] = oci_purl(repository, digest, platform)
    component.setdefault("type", "container")
    properties = [p for p in component.get("properties") or [] if p.get("name") != "platform"]
    component["properties"] = [*properties, {"name": "platform", "value": platform}]
    return out


def stamp_vuln(document: Mapping[str, Any], database: Mapping[str, Any]) -> dict[str, Any]:
    """The cosign-vuln predicate with the DB it was scanned with.

    `scanner.db` gets the DB's `uri` (oci://source@digest) and `version` (its UpdatedAt): the two
    fields cosign's vuln predicate type has. cosign re-encodes that predicate through its own
    struct at `attest` time and drops any other key there, so the fixture mark and the DB facts
    travel in `scanner.result` (the Trivy report, which cosign keeps whole) under `DB_FACTS`.
    """
    out = copy.deepcopy(dict(document))
    scanner = out.setdefault("scanner", {})
    source, digest = database.get("source") or "", database.get("digest") or ""
    scanner["db"] = {
        "uri": f"oci://{source}@{digest}" if digest else f"oci://{source}",
        "version": database.get("updated_at") or "",
    }
    result = scanner.get("result")
    if not isinstance(result, dict):
        result = scanner["result"] = {}
    result[DB_FACTS] = {
        "source": source,
        "digest": digest or None,
        "updated_at": database.get("updated_at") or None,
        "fixture": bool(database.get("fixture")),
    }
    return out


def scanned_with_fixture(predicate: Mapping[str, Any]) -> bool:
    """Whether a cosign-vuln predicate says its scan used the fixture DB (see `stamp_vuln`)."""
    result = (predicate.get("scanner") or {}).get("result") or {}
    facts = result.get(DB_FACTS) if isinstance(result, dict) else None
    return bool(isinstance(facts, dict) and facts.get("fixture"))


@dataclass(frozen=True, kw_only=True)
class BuildFacts:
    """What the provenance says about one image's build."""

    image: str
    repository: str  # host/path
    index_digest: str
    platforms: Mapping[str, str]  # platform -> digest
    source_repository: str | None  # https URL of the git repository
    commit: str
    ref: str | None  # refs/tags/v1.2.3, refs/heads/main
    spec_path: str  # relative to the repository
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    base_images: Sequence[tuple[str, str | None]] = ()  # (reference, digest or None)
    builder_id: str = ""  # the CI run's URL, or `urn:…:host:<name>`
    workflow_ref: str | None = None  # GitHub workflow ref / GitLab CI config ref
    invocation_id: str = ""
    started_on: str | None = None
    finished_on: str | None = None
    tool_version: str = ""


def provenance(facts: BuildFacts) -> dict[str, Any]:
    """The SLSA v1 provenance predicate of one image (index and platforms as byproducts)."""
    source_uri = f"git+{facts.source_repository}" if facts.source_repository else "git+unknown"
    if facts.ref:
        source_uri += f"@{facts.ref}"
    dependencies: list[dict[str, Any]] = [
        {"uri": source_uri, "digest": {"gitCommit": facts.commit}}
    ]
    for reference, digest in facts.base_images:
        entry: dict[str, Any] = {"uri": f"pkg:docker/{reference}"}
        if digest:
            entry["digest"] = {"sha256": digest.removeprefix("sha256:")}
        dependencies.append(entry)
    external: dict[str, Any] = {
        "source": {
            "repository": facts.source_repository,
            "ref": facts.ref,
            "commit": facts.commit,
        },
        "spec": facts.spec_path,
        "image": facts.image,
        "platforms": sorted(facts.platforms),
        "buildArgs": dict(sorted(facts.build_args.items())),
    }
    if facts.target:
        external["target"] = facts.target
    if facts.workflow_ref:
        external["workflow"] = {"ref": facts.workflow_ref}
    metadata: dict[str, Any] = {"invocationId": facts.invocation_id}
    if facts.started_on:
        metadata["startedOn"] = facts.started_on
    if facts.finished_on:
        metadata["finishedOn"] = facts.finished_on
    byproducts = [
        {
            "name": f"{facts.repository}@{facts.index_digest}",
            "digest": {"sha256": facts.index_digest.removeprefix("sha256:")},
            "annotations": {"kind": "index"},
        }
    ] + [
        {
            "name": f"{facts.repository}@{digest}",
            "digest": {"sha256": digest.removeprefix("sha256:")},
            "annotations": {"kind": "image", "platform": platform},
        }
        for platform, digest in sorted(facts.platforms.items())
    ]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"tool": f"pipeline-release {facts.tool_version}".strip()},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": facts.builder_id},
            "metadata": metadata,
            "byproducts": byproducts,
        },
    }


def provenance_source(predicate: Mapping[str, Any]) -> dict[str, Any]:
    """`buildDefinition.externalParameters.source` of a provenance predicate (for verify)."""
    build = predicate.get("buildDefinition") or {}
    source = (build.get("externalParameters") or {}).get("source") or {}
    return dict(source) if isinstance(source, Mapping) else {}


def provenance_subjects(predicate: Mapping[str, Any]) -> list[str]:
    """The digests a provenance predicate lists as the build's outputs (index, platforms)."""
    byproducts = (predicate.get("runDetails") or {}).get("byproducts") or []
    return [
        "sha256:" + str((item.get("digest") or {}).get("sha256", ""))
        for item in byproducts
        if isinstance(item, Mapping)
    ]
