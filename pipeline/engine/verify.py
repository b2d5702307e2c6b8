"""Verify: the gate every consumer of a release can run, and the one the engine runs itself
(right after signing, before reusing a digest, before a promotion or rollback).

A digest passes when: its index signature verifies with the key or keyless identity; every
platform image carries an SBOM and a vulnerability attestation that verify; the attested scan
meets the spec's policy; and, when reached through a version tag, the signed version matches it.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipeline import gate, oci
from pipeline.adapters.cosign import signature_tag
from pipeline.adapters.registry import RegistryClient
from pipeline.engine.workspace import Workspace
from pipeline.errors import VerifyFailed
from pipeline.refs import DigestRef
from pipeline.state import ScanState

VERSION_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-+].*)?$")


@dataclass
class Verified:
    repository: str
    digest: str
    platforms: dict[str, str]
    scan: ScanState
    signature: str
    attestations: list[str] = field(default_factory=list)
    version: str | None = None
    revision: str | None = None


def split_repository(repository: str) -> tuple[str, str]:
    host, _, path = repository.partition("/")
    return host, path


def verify_digest(
    ws: Workspace,
    repository: str,
    digest: str,
    *,
    client: RegistryClient | None = None,
    through_tag: str | None = None,
) -> Verified:
    """Verify `repository@digest` (repository is host/path) or raise VerifyFailed."""
    client = client or ws.client
    _, path = split_repository(repository)
    manifest = client.resolve(path, digest)
    if manifest is None:
        raise VerifyFailed(f"{repository}@{digest} does not exist in the registry")
    platforms = oci.platform_digests(manifest.document) if manifest.is_index else {"": digest}
    cosign = ws.cosign()
    index_ref = DigestRef.parse(f"{repository}@{digest}")
    kinds = [k for k in ws.spec.sign.attestations if k in ("cyclonedx", "vuln")]

    def check(job: tuple[str, str, str]) -> tuple[str, str, list[dict[str, Any]]]:
        platform, pdigest, kind = job
        ref = DigestRef.parse(f"{repository}@{pdigest}")
        return platform, kind, cosign.verify_attestation(ref, ws.identity, kind)

    # The signature and every attestation are checked at once (one cosign process each).
    jobs = [(p, d, k) for p, d in sorted(platforms.items()) for k in kinds]
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        signed = pool.submit(cosign.verify, index_ref, ws.identity)
        attested = pool.map(check, jobs)
        payloads = signed.result()
        results = list(attested)
    annotations: dict[str, Any] = payloads[0].get("optional") or {}
    version = annotations.get("org.opencontainers.image.version")
    revision = annotations.get("org.opencontainers.image.revision")
    if (
        through_tag
        and VERSION_TAG.match(through_tag)
        and (version is None or through_tag.lstrip("v") != str(version).lstrip("v"))
    ):
        raise VerifyFailed(
            f"tag {through_tag} points at {digest[:19]}…, which was signed as version "
            f"{version or 'none'}: the tag was re-pointed"
        )
    verdicts: list[gate.Verdict] = []
    for platform, kind, statements in results:
        if not statements:
            raise VerifyFailed(f"{repository}@{digest}: no {kind} attestation for {platform}")
        if kind == "vuln":
            report = _attested_report(statements, platform)
            verdict = gate.evaluate(gate.findings(report, platform), ws.spec.scan)
            if not verdict.passed:
                worst = verdict.blocking[0]
                raise VerifyFailed(
                    f"{repository}@{digest}: the attested scan of {platform} fails the policy "
                    f"({worst.severity} {worst.id} in {worst.package})"
                )
            verdicts.append(verdict)
    counts = gate.merge_counts(verdicts)
    return Verified(
        repository=repository,
        digest=digest,
        platforms={p: d for p, d in platforms.items() if p},
        scan=ScanState(
            verdict="pass",
            counts=counts,
            blocking=[],
            unfixed_allowed=sum(v.unfixed for v in verdicts),
        ),
        signature=f"{repository}:{signature_tag(digest)}",
        attestations=sorted(
            {f"{repository}:{signature_tag(d, 'att')}" for d in platforms.values()}
        ),
        version=str(version) if version else None,
        revision=str(revision) if revision else None,
    )


def _attested_report(statements: list[dict[str, Any]], platform: str) -> dict[str, Any]:
    """The Trivy report inside the newest cosign-vuln predicate."""
    predicate = statements[-1].get("predicate") or {}
    result = (predicate.get("scanner") or {}).get("result")
    if not isinstance(result, dict):
        raise VerifyFailed(f"the vulnerability attestation of {platform} holds no scan result")
    return result
