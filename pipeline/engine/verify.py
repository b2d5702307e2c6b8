"""Verify: the gate every consumer of a release can run, and the one the engine runs itself
(right after signing, before reusing a digest, before a promotion or rollback).

A digest passes when:
- its index signature verifies with the key or keyless identity, and, reached through a version
  tag, the signed version matches the tag;
- the index carries, where verifiers look, an SBOM and a vulnerability attestation for every
  platform and the SLSA provenance, and every platform image carries its own; all verify;
- every attested scan meets the spec's policy, and none was made with the sandbox's fixture DB
  (unless fixtures are allowed: the sandbox, PIPELINE_OFFLINE_FIXTURES=1, or --allow-fixtures);
- the provenance names the commit the signature names, the expected source repository and, on
  CI, this workflow; and it lists the index and every platform digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__, gate, oci, predicates
from pipeline.adapters.cosign import signature_tag
from pipeline.adapters.registry import RegistryClient
from pipeline.engine.workspace import Workspace
from pipeline.errors import VerifyFailed
from pipeline.paths import cache_dir
from pipeline.refs import DigestRef
from pipeline.state import ScanState
from pipeline.versions import fill

# Also in pipeline.engine.changes (which reads them to find unchanged images).
BUILT_REVISION = "dev.pipeline-release.built-revision"
BUILT_VERSION = "dev.pipeline-release.built-version"

VERSION_TAG = re.compile(r"^v?\d+\.\d+\.\d+([-+].*)?$")
INDEX = ""  # the key of the index in per-digest results


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
    fixture: bool = False  # scanned with the fixture DB
    provenance: dict[str, Any] = field(default_factory=dict)
    # The commit and version the digest was built as (an unchanged image re-signed for a later
    # version keeps those of its build); the same as revision and version otherwise.
    built_revision: str | None = None
    built_version: str | None = None


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
    allow_fixtures: bool = False,
) -> Verified:
    """Verify `repository@digest` (repository is host/path) or raise VerifyFailed.

    A digest this machine verified before with exactly the same inputs (the signature and
    attestation manifests, by digest; the public key; the policy; the tag and commit) is not
    verified again: the result is read from the verification cache (`cache_key`)."""
    client = client or ws.client
    _, path = split_repository(repository)
    manifest = client.resolve(path, digest)
    if manifest is None:
        raise VerifyFailed(f"{repository}@{digest} does not exist in the registry")
    platforms = oci.platform_digests(manifest.document) if manifest.is_index else {}
    key = cache_key(
        ws,
        client,
        path,
        digest=digest,
        platforms=platforms,
        through_tag=through_tag,
        allow_fixtures=allow_fixtures,
    )
    cached = _cached(key) if key else None
    if cached is not None:
        return cached
    result = _verify(
        ws,
        repository,
        digest,
        platforms,
        through_tag=through_tag,
        allow_fixtures=allow_fixtures,
    )
    if key:
        _remember(key, result)
    return result


def _verify(
    ws: Workspace,
    repository: str,
    digest: str,
    platforms: dict[str, str],
    *,
    through_tag: str | None,
    allow_fixtures: bool,
) -> Verified:
    cosign = ws.cosign()
    expected_ref = signed_ref(ws, through_tag, repository)
    kinds = [k for k in ws.spec.sign.attestations if k in ("cyclonedx", "vuln", "provenance")]
    targets = {INDEX: digest, **platforms}
    index = DigestRef.parse(f"{repository}@{digest}")

    def check(job: tuple[str, str, str | None]) -> tuple[str, str, list[dict[str, Any]]]:
        where, kind, expected = job
        ref = DigestRef.parse(f"{repository}@{targets[where]}")
        return where, kind, cosign.verify_attestation(ref, ws.identity, kind, expected)

    jobs = [(where, kind) for where in sorted(targets) for kind in kinds]
    if expected_ref is None:
        # The signature and every attestation of every digest are checked at once.
        with ThreadPoolExecutor(max_workers=min(len(jobs) + 1, 8)) as pool:
            signed = pool.submit(cosign.verify, index, ws.identity, expected_ref)
            checks = [pool.submit(check, (w, k, None)) for w, k in jobs]
            payloads = signed.result()  # an unsigned digest is reported as that, first
            attested = [future.result() for future in checks]
        payload = choose_payload(payloads, through_tag, ws.context.sha)
    else:
        # A CI identity names the release's tag: the attestations were made by the release
        # that built the digest, which an unchanged image's new signature names.
        payloads = cosign.verify(index, ws.identity, expected_ref)
        payload = choose_payload(payloads, through_tag, ws.context.sha)
        built_as = (payload.get("optional") or {}).get(BUILT_VERSION)
        attested_ref = (
            signed_ref(ws, f"{built_as}", repository, version_tag=True) if built_as else None
        ) or expected_ref
        with ThreadPoolExecutor(max_workers=min(len(jobs), 8) or 1) as pool:
            attested = list(pool.map(check, [(w, k, attested_ref) for w, k in jobs]))
    annotations: dict[str, Any] = payload.get("optional") or {}
    version = annotations.get("org.opencontainers.image.version")
    revision = annotations.get("org.opencontainers.image.revision")
    built_revision = annotations.get(BUILT_REVISION) or revision
    built_version = annotations.get(BUILT_VERSION) or version
    if (
        through_tag
        and VERSION_TAG.match(through_tag)
        and (version is None or through_tag.lstrip("v") != str(version).lstrip("v"))
    ):
        raise VerifyFailed(
            f"tag {through_tag} points at {digest[:19]}…, which was signed as version "
            f"{version or 'none'}: the tag was re-pointed"
        )
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for where, kind, statements in attested:
        if not statements:
            what = "the index" if where == INDEX else where
            raise VerifyFailed(f"{repository}@{digest}: no {kind} attestation for {what}")
        found[(where, kind)] = statements
    allowed = allow_fixtures or ws.fixtures_allowed
    verdicts, fixture = _check_scans(ws, repository, digest, platforms, found, allowed=allowed)
    _check_index_sboms(repository, digest, platforms, found)
    provenance = _check_provenance(
        ws,
        repository=repository,
        digest=digest,
        platforms=platforms,
        found=found,
        revision=built_revision,
    )
    return Verified(
        repository=repository,
        digest=digest,
        platforms=platforms,
        scan=ScanState(
            verdict="pass",
            counts=gate.merge_counts(verdicts),
            blocking=[],
            unfixed_allowed=sum(v.unfixed for v in verdicts),
        ),
        signature=f"{repository}:{signature_tag(digest)}",
        attestations=sorted({f"{repository}:{signature_tag(d, 'att')}" for d in targets.values()}),
        version=str(version) if version else None,
        revision=str(revision) if revision else None,
        fixture=fixture,
        provenance=provenance,
        built_revision=str(built_revision) if built_revision else None,
        built_version=str(built_version) if built_version else None,
    )


def cache_key(
    ws: Workspace,
    client: RegistryClient,
    path: str,
    *,
    digest: str,
    platforms: Mapping[str, str],
    through_tag: str | None,
    allow_fixtures: bool,
) -> str | None:
    """What a verification depends on, as one digest; None when it cannot be cached.

    Key signatures only (a keyless certificate's validity depends on the time of the check),
    with a public key this run can read. The signature and every attestation manifest are named
    by their registry digests (read now: a new signature or attestation is a new key), with the
    public key's text, the scan policy and ignore file, the attestations the spec asks for, the
    source and workflow the provenance must name, the tag reached, this commit and this
    version of the tool."""
    identity = ws.identity
    if identity.keyless is not None or not identity.public_key:
        return None
    public = _public_key_text(ws, identity.public_key)
    if public is None:
        return None
    manifests = [client.digest_of(path, signature_tag(digest))]
    manifests += [
        client.digest_of(path, signature_tag(d, "att")) for d in [digest, *platforms.values()]
    ]
    if any(m is None for m in manifests):
        return None  # verified in full, which says what is missing
    ignore = ws.loaded.resolve(ws.spec.scan.ignore_file) if ws.spec.scan.ignore_file else None
    facts = {
        "tool": __version__,
        "registry": client.host,
        "path": path,
        "digest": digest,
        "manifests": manifests,
        "public_key": "".join(public.split()),
        "scan": repr(ws.spec.scan),
        "ignore": ignore.read_text() if ignore is not None and ignore.is_file() else None,
        "attestations": list(ws.spec.sign.attestations),
        "source": ws.context.source_url,
        "workflow": ws.context.workflow_ref,
        "fixtures": allow_fixtures or ws.fixtures_allowed,
        "through": through_tag,
        "commit": ws.context.sha,
    }
    text = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _public_key_text(ws: Workspace, reference: str) -> str | None:
    if reference.startswith("env://"):
        name = reference.removeprefix("env://")
        return ws.signing.cosign_env.get(name) or ws.environ.get(name) or None
    if "://" in reference:
        return None  # a KMS: what it holds is not read here
    path = Path(reference)
    return path.read_text() if path.is_file() else None


def _cache_file(key: str) -> Path:
    return cache_dir() / "verified" / key[:2] / f"{key}.json"


def _cached(key: str) -> Verified | None:
    try:
        data = json.loads(_cache_file(key).read_text())
        scan = ScanState(**data.pop("scan"))
        return Verified(scan=scan, **data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _remember(key: str, result: Verified) -> None:
    target = _cache_file(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(result), sort_keys=True))
    tmp.replace(target)


def choose_payload(
    payloads: Sequence[Mapping[str, Any]], through_tag: str | None, commit: str
) -> dict[str, Any]:
    """The verified signature that speaks for this check. A digest signed more than once (an
    unchanged image re-signed for each new version) has one signature per release: reached
    through a version tag, the one of that version; else the one of this commit, else the first
    (the build's own)."""

    def annotation(payload: Mapping[str, Any], key: str) -> str:
        return str((payload.get("optional") or {}).get(key) or "")

    if through_tag and VERSION_TAG.match(through_tag):
        wanted = through_tag.lstrip("v")
        for payload in payloads:
            if annotation(payload, "org.opencontainers.image.version").lstrip("v") == wanted:
                return dict(payload)
    for payload in payloads:
        if annotation(payload, "org.opencontainers.image.revision") == commit:
            return dict(payload)
    return dict(payloads[0])


def signed_ref(
    ws: Workspace,
    through_tag: str | None,
    repository: str | None = None,
    *,
    version_tag: bool = False,
) -> str | None:
    """The git ref a keyless CI identity must name: the release tag of the version reached
    (`refs/tags/v1.2.3` for the tag `1.2.3`; an image's own release tag, `refs/tags/api/v1.2.3`),
    or this run's own tag right after signing. `version_tag`: `through_tag` is a version."""
    if ws.spec.sign.keyless is None or ws.spec.sign.keyless.ci is None:
        return None
    image = ws.image_of(repository) if repository else None
    policy = ws.tag_policy(image)
    if through_tag and (version_tag or VERSION_TAG.match(through_tag)):
        version = through_tag.removeprefix(policy.prefix).removesuffix(policy.suffix)
        version = version.removeprefix("v")
        return f"refs/tags/{fill(policy.release_tag, {'version': version})}"
    if through_tag is None and ws.signs and ws.context.tag:
        return ws.context.git_ref
    return None


def _predicates(statements: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(s.get("predicate") or {}) for s in statements]


def _report(predicate: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The Trivy report inside a cosign-vuln predicate."""
    result = (predicate.get("scanner") or {}).get("result")
    if not isinstance(result, dict):
        raise VerifyFailed(f"the vulnerability attestation of {where} holds no scan result")
    return result


def _check_scans(
    ws: Workspace,
    repository: str,
    digest: str,
    platforms: Mapping[str, str],
    found: Mapping[tuple[str, str], list[dict[str, Any]]],
    *,
    allowed: bool,
) -> tuple[list[gate.Verdict], bool]:
    """Every attested scan meets the policy; a fixture DB's scan only where fixtures are allowed."""
    verdicts: list[gate.Verdict] = []
    fixture = False
    if "vuln" not in ws.spec.sign.attestations:
        return verdicts, fixture
    on_index = newest_per_platform(_predicates(found.get((INDEX, "vuln"), [])))
    missing = [p for p in platforms if p not in on_index]
    if missing:
        raise VerifyFailed(
            f"{repository}@{digest}: the index carries no vulnerability attestation for "
            f"{missing[0]}"
        )
    for where in [INDEX, *sorted(platforms)]:
        # The newest scan counts (a rescan appends one): per platform, on the index too.
        statements = _predicates(found.get((where, "vuln"), []))
        chosen = list(on_index.values()) if where == INDEX else statements[-1:]
        for predicate in chosen:
            label = where or "the index"
            if predicates.scanned_with_fixture(predicate):
                fixture = True
                if not allowed:
                    raise VerifyFailed(
                        f"{repository}@{digest}: {label} was scanned with the fixture Trivy DB "
                        "(the sandbox's planted advisories, not real data); --allow-fixtures "
                        "accepts it outside the sandbox"
                    )
            verdict = gate.evaluate(gate.findings(_report(predicate, label), where), ws.spec.scan)
            if not verdict.passed:
                worst = verdict.blocking[0]
                raise VerifyFailed(
                    f"{repository}@{digest}: the attested scan of {label} fails the policy "
                    f"({worst.severity} {worst.id} in {worst.package})"
                )
            if where:
                verdicts.append(verdict)
    return verdicts, fixture


def scanned_platform(predicate: Mapping[str, Any]) -> str:
    """The platform of the image a cosign-vuln predicate's Trivy report describes."""
    result = (predicate.get("scanner") or {}).get("result") or {}
    config = (result.get("Metadata") or {}).get("ImageConfig") or {}
    text = f"{config.get('os')}/{config.get('architecture')}"
    return f"{text}/{config['variant']}" if config.get("variant") else text


def newest_per_platform(found: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The last (newest) predicate of each platform, in attestation order."""
    newest: dict[str, Mapping[str, Any]] = {}
    for predicate in found:
        newest[scanned_platform(predicate)] = predicate
    return newest


def _check_index_sboms(
    repository: str,
    digest: str,
    platforms: Mapping[str, str],
    found: Mapping[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """The index carries an SBOM naming each platform image (by digest: a mirror copy names the
    registry it was released to)."""
    if (INDEX, "cyclonedx") not in found:
        return
    named = {
        str(((p.get("metadata") or {}).get("component") or {}).get("name", "")).rpartition("@")[2]
        for p in _predicates(found[(INDEX, "cyclonedx")])
    }
    for platform, platform_digest in sorted(platforms.items()):
        if platform_digest not in named:
            raise VerifyFailed(
                f"{repository}@{digest}: the index has no SBOM of its {platform} image"
            )


def _check_provenance(
    ws: Workspace,
    *,
    repository: str,
    digest: str,
    platforms: Mapping[str, str],
    found: Mapping[tuple[str, str], list[dict[str, Any]]],
    revision: object,
) -> dict[str, Any]:
    """The provenance binds the image to its commit, repository, workflow and digests."""
    if (INDEX, "provenance") not in found:
        return {}
    predicate = _predicates(found[(INDEX, "provenance")])[-1]
    source = predicates.provenance_source(predicate)
    label = f"{repository}@{digest}: the provenance"
    if revision and source.get("commit") != revision:
        raise VerifyFailed(
            f"{label} names commit {str(source.get('commit'))[:12]}, the signature "
            f"{str(revision)[:12]}"
        )
    expected = ws.context.source_url
    if expected and source.get("repository") and source.get("repository") != expected:
        raise VerifyFailed(
            f"{label} names repository {source.get('repository')}, not this spec's {expected}"
        )
    workflow = ((predicate.get("buildDefinition") or {}).get("externalParameters") or {}).get(
        "workflow"
    ) or {}
    # The workflow is its repository and file; its ref differs between the release (a tag) and,
    # say, a rollback dispatched from the default branch.
    expected_workflow = (ws.context.workflow_ref or "").partition("@")[0]
    built_by = str(workflow.get("ref") or "").partition("@")[0]
    if expected_workflow and built_by != expected_workflow:
        raise VerifyFailed(
            f"{label} names workflow {built_by or 'none'}, not this run's {expected_workflow}"
        )
    subjects = set(predicates.provenance_subjects(predicate))
    missing = [d for d in [digest, *platforms.values()] if d not in subjects]
    if missing:
        raise VerifyFailed(f"{label} does not list {missing[0][:19]}… among the build's outputs")
    return predicate
