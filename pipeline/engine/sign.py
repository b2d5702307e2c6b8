"""Sign: cosign signs the index digest and attests, where verifiers look and on every platform:

- on the index (the digest a tag resolves to, which `cosign verify-attestation IMAGE:TAG`,
  Kyverno and the policy-controller check): every platform's SBOM (CycloneDX) and scan result
  (cosign-vuln), and the SLSA v1 provenance;
- on each platform image: its own SBOM and scan result, and the same provenance.
Then everything is verified at once with the public key or keyless identity.

Only a digest that passed the gate is signed: the signature is the proof it was scanned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import platform as host
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from pipeline import __version__, paths, predicates, ui
from pipeline.adapters.cosign import Cosign, signature_tag
from pipeline.engine import changes
from pipeline.engine.verify import split_repository, verify_digest
from pipeline.engine.workspace import Workspace
from pipeline.errors import GateFailed, SpecError
from pipeline.filelock import locked
from pipeline.refs import DigestRef
from pipeline.state import ImageState, State
from pipeline.tags import version_tag_names

ATTESTATION_FILES = {"cyclonedx": "cyclonedx", "vuln": "cosign-vuln"}
PROVENANCE_DIR = paths.DIST / "provenance"


def signature_annotations(ws: Workspace, image: ImageState) -> dict[str, str]:
    """Bound into the signed payload: which commit and version this digest was released as, and
    the digest of its build's inputs (read back by later runs: `engine.changes`)."""
    annotations = {"org.opencontainers.image.revision": ws.context.sha}
    version = ws.tagset_for(ws.image(image.name)).version
    if version:
        annotations["org.opencontainers.image.version"] = version
    if image.inputs:
        annotations[changes.INPUTS_ANNOTATION] = image.inputs
    return annotations


def run_sign(ws: Workspace, state: State) -> None:
    """Sign every image of the state one after another (`schedule` runs them side by side)."""
    for name in sorted(state.images):
        sign_step(ws, state, name)


def check_signer(ws: Workspace) -> None:
    if ws.identity.key is None and ws.identity.keyless is None:
        raise SpecError(
            f"sign: no signing key; set {ws.spec.sign.key_env} (a cosign key reference) and "
            "COSIGN_PASSWORD, or configure keyless signing in the spec"
        )
    with ws.state_lock:
        if ws.throwaway_key and not ws.warned_throwaway:
            ws.warned_throwaway = True
            ui.warn(
                f"signing with a throwaway local key ({ws.identity.key}); set "
                f"{ws.spec.sign.key_env} to sign with yours"
            )


def sign_step(ws: Workspace, state: State, name: str) -> None:
    if not ws.push:
        ui.ok(f"{name}: pull request context: nothing is signed")
        return
    image = state.images[name]
    if image.reused:
        ui.ok(f"{name}: nothing new to sign (this commit's release is signed already)")
        return
    check_signer(ws)
    if image.unchanged_since:
        resign(ws, image)
    else:
        _sign_image(ws, state, image)
    pem = ws.signing.public_key_pem
    if pem:
        with ws.state_lock:
            state.public_key = pem
            # Kept with the reports, so the printed `cosign verify --key dist/cosign.pub` works
            # after the run (the run's scratch folder is gone by then).
            ws.path(paths.PUBLIC_KEY).write_text(pem)


def resign(ws: Workspace, image: ImageState) -> None:
    """An unchanged image: its digest signed again as this version and commit (the payload also
    names the commit and version it was built as); its attestations stay as they are."""
    index_ref = DigestRef.parse(image.digest_ref)
    _, path = split_repository(image.repository)
    annotations = signature_annotations(ws, image)
    version = annotations.get(changes.VERSION)
    payloads = changes.signature_payloads(ws.client, path, image.index_digest or "")
    built = next(
        (
            changes.annotations_of(p)
            for p in payloads
            if changes.annotations_of(p).get(changes.INPUTS_ANNOTATION) == image.inputs
        ),
        {},
    )
    annotations[changes.BUILT_REVISION] = str(
        built.get(changes.BUILT_REVISION) or built.get(changes.REVISION) or ""
    )
    annotations[changes.BUILT_VERSION] = str(
        built.get(changes.BUILT_VERSION) or built.get(changes.VERSION) or image.unchanged_since
    )
    cosign = ws.cosign()
    spec_image = ws.image(image.name)
    again = version or ws.context.short_sha
    label = f"{image.name}: cosign sign {index_ref.digest.short()}… again as {again}"
    with ui.progress(label, row=(image.name, "")):
        if not changes.signed_as(payloads, version, ws.context.sha):
            cosign.sign(index_ref, ws.identity, annotations)
    image.signature = f"{image.repository}:{signature_tag(image.index_digest or '')}"
    names = version_tag_names(ws.tag_policy(spec_image), version) if version else ()
    with ui.progress(f"{image.name}: verify the new signature", row=(image.name, "")):
        verify_digest(
            ws, image.repository, image.index_digest or "", through_tag=names[0] if names else None
        )
    image.verified = True
    ui.ok(f"{image.name}: signed again as {again} (unchanged since {image.unchanged_since})")


def signing_lock(repository: str, digest: str) -> contextlib.AbstractContextManager[None]:
    name = hashlib.sha256(f"{repository}@{digest}".encode()).hexdigest()[:16]
    return locked(paths.cache_dir() / "locks" / f"sign-{name}.lock")


def builder_id(ws: Workspace) -> str:
    """Who built it: the CI run's URL, or this host."""
    return ws.context.run_url or f"urn:pipeline-release:host:{host.node() or 'unknown'}"


def write_provenance(ws: Workspace, state: State, image: ImageState) -> Path:
    spec_image = next(i for i in ws.spec.images if i.name == image.name)
    try:
        spec_path = ws.loaded.path.relative_to(paths.project_root(ws.loaded.base_dir)).as_posix()
    except ValueError:
        spec_path = ws.loaded.path.name
    facts = predicates.BuildFacts(
        image=image.name,
        repository=image.repository,
        index_digest=image.index_digest or "",
        platforms=image.platforms,
        source_repository=ws.context.source_url,
        commit=ws.context.sha,
        ref=ws.context.git_ref,
        spec_path=spec_path,
        build_args=image.build_args,
        target=spec_image.target,
        base_images=[(str(ref), digest) for ref, digest in image.base_images],
        builder_id=builder_id(ws),
        workflow_ref=ws.context.workflow_ref,
        invocation_id=state.run_id,
        started_on=state.started_at,
        finished_on=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tool_version=__version__,
    )
    out = ws.path(PROVENANCE_DIR / f"{image.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(predicates.provenance(facts), indent=2, sort_keys=True) + "\n")
    return out


Job = tuple[DigestRef, str, Path]  # (digest, attestation kind, predicate file)


def _attest_in_turn(ws: Workspace, cosign: Cosign, jobs: list[Job]) -> None:
    """One digest's attestations, one `cosign attest` after another (keyless: each process
    gets its certificate from Fulcio and attaches it with its attestation)."""
    for ref, kind, predicate in jobs:
        cosign.attest(ref, ws.identity, kind, predicate)


def _attest_batched(
    ws: Workspace, cosign: Cosign, image: ImageState, per_digest: list[list[Job]], pool: Executor
) -> None:
    """With a key: every attestation signed at once (`cosign attest --no-upload`, nothing
    written to the registry), then each digest's attached by one process (`cosign attach
    attestation`, one write of its `.att` tag). The same envelopes as `cosign attest` writes,
    in the same order; only the many writes to one tag are gone."""
    folder = ws.scratch / "attestations" / image.name
    folder.mkdir(parents=True, exist_ok=True)
    numbered = [
        (digest_index, index, job)
        for digest_index, jobs in enumerate(per_digest)
        for index, job in enumerate(jobs)
    ]

    def envelope(item: tuple[int, int, Job]) -> Path:
        digest_index, index, (ref, kind, predicate) = item
        out = folder / f"{digest_index}-{index}-{kind}.json"
        return cosign.attestation_envelope(ref, ws.identity, kind, predicate, out)

    envelopes = list(pool.map(envelope, numbered))
    by_digest: list[list[Path]] = [[] for _ in per_digest]
    for (digest_index, _, _), path in zip(numbered, envelopes, strict=True):
        by_digest[digest_index].append(path)
    attach = [
        (jobs[0][0], paths) for jobs, paths in zip(per_digest, by_digest, strict=True) if jobs
    ]
    list(pool.map(lambda item: cosign.attach_attestations(*item), attach))


def _sign_image(ws: Workspace, state: State, image: ImageState) -> None:
    if image.scan is None or image.scan.verdict != "pass":
        raise GateFailed(
            f"sign: {image.name} {image.index_digest} has no passing scan in the state; "
            "run scan first (only scanned digests are signed)"
        )
    cosign = ws.cosign()
    index_ref = DigestRef.parse(image.digest_ref)
    kinds = [k for k in ws.spec.sign.attestations if k in ATTESTATION_FILES]
    reports: dict[str, list[tuple[str, Path]]] = {}  # platform -> [(kind, predicate file)]
    for platform in sorted(image.platforms):
        found = image.scan.reports.get(platform, {})
        for kind in kinds:
            report = found.get(ATTESTATION_FILES[kind])
            if report is None:
                raise SpecError(f"sign: no {kind} report for {image.name} {platform}; run scan")
            reports.setdefault(platform, []).append((kind, ws.dist.parent / report))
    provenance = (
        write_provenance(ws, state, image) if "provenance" in ws.spec.sign.attestations else None
    )
    # Attestations of the same digest share its `.att` tag: two cosign processes appending to it
    # at once would lose one of them, so each digest's are written by one process at a time.
    per_digest: list[list[tuple[DigestRef, str, Path]]] = []
    on_index = [(index_ref, kind, path) for p in sorted(reports) for kind, path in reports[p]]
    if provenance is not None:
        on_index.append((index_ref, "provenance", provenance))
    per_digest.append(on_index)
    for platform, digest in sorted(image.platforms.items()):
        ref = DigestRef.parse(f"{image.repository}@{digest}")
        jobs = [(ref, kind, path) for kind, path in reports.get(platform, [])]
        if provenance is not None:
            jobs.append((ref, "provenance", provenance))
        per_digest.append(jobs)

    count = sum(len(jobs) for jobs in per_digest)
    label = f"{image.name}: cosign sign {index_ref.digest.short()}… and {count} attestation(s)"
    annotations = signature_annotations(ws, image)
    # Two runs of one commit on this machine (a push and its tag, a re-run) write the same
    # digests' `.sig` and `.att` tags: one at a time, each then verifying what it wrote.
    with signing_lock(image.repository, image.index_digest or ""):
        with ui.progress(label, row=(image.name, "")), ThreadPoolExecutor(4) as pool:
            # The index signature and the attestations of each digest live under different tags
            # (.sig, and one .att per digest), so they are written at the same time.
            signed = pool.submit(cosign.sign, index_ref, ws.identity, annotations)
            if ws.identity.key is not None:
                _attest_batched(ws, cosign, image, per_digest, pool)
            else:
                list(pool.map(lambda jobs: _attest_in_turn(ws, cosign, jobs), per_digest))
            signed.result()
        image.signature = f"{image.repository}:{signature_tag(image.index_digest or '')}"
        digests = [image.index_digest or "", *image.platforms.values()]
        image.attestations = sorted(
            {f"{image.repository}:{signature_tag(d, 'att')}" for d in digests}
        )
        with ui.progress(f"{image.name}: verify signature and attestations", row=(image.name, "")):
            verify_digest(ws, image.repository, image.index_digest or "")
    image.verified = True
    ui.ok(f"{image.name}: signed and verified {image.index_digest}")
