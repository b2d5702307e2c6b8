"""Sign: cosign signs the index digest, attaches each platform's SBOM (CycloneDX) and scan result
(cosign-vuln) as attestations, then verifies all of it at once with the public key.

Only a digest that passed the gate is signed: the signature is the proof it was scanned.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline import paths, ui
from pipeline.adapters.cosign import signature_tag
from pipeline.engine.verify import verify_digest
from pipeline.engine.workspace import Workspace
from pipeline.errors import GateFailed, SpecError
from pipeline.refs import DigestRef
from pipeline.state import ImageState, State

ATTESTATION_FILES = {"cyclonedx": "cyclonedx", "vuln": "cosign-vuln"}


def signature_annotations(ws: Workspace) -> dict[str, str]:
    """Bound into the signed payload: which commit and version this digest was released as."""
    annotations = {"org.opencontainers.image.revision": ws.context.sha}
    if ws.tagset.version:
        annotations["org.opencontainers.image.version"] = ws.tagset.version
    return annotations


def run_sign(ws: Workspace, state: State) -> None:
    if not ws.push:
        ui.ok("sign: pull request context: nothing is signed")
        return
    todo = [image for image in state.images.values() if not image.reused]
    if not todo:
        ui.ok("sign: nothing new to sign (reused digests are already signed)")
        return
    if ws.identity.key is None and ws.identity.keyless is None:
        raise SpecError(
            f"sign: no signing key; set {ws.spec.sign.key_env} (a cosign key reference) and "
            "COSIGN_PASSWORD, or configure keyless signing in the spec"
        )
    if ws.throwaway_key:
        ui.warn(
            f"signing with a throwaway local key ({ws.identity.key}); set "
            f"{ws.spec.sign.key_env} to sign with yours"
        )
    for image in todo:
        _sign_image(ws, image)
    pem = ws.signing.public_key_pem
    if pem:
        state.public_key = pem
        # Kept with the reports, so the printed `cosign verify --key dist/cosign.pub` works
        # after the run (the run's scratch folder is gone by then).
        ws.path(paths.PUBLIC_KEY).write_text(pem)


def _sign_image(ws: Workspace, image: ImageState) -> None:
    if image.scan is None or image.scan.verdict != "pass":
        raise GateFailed(
            f"sign: {image.name} {image.index_digest} has no passing scan in the state; "
            "run scan first (only scanned digests are signed)"
        )
    cosign = ws.cosign()
    index_ref = DigestRef.parse(image.digest_ref)
    kinds = [k for k in ws.spec.sign.attestations if k in ATTESTATION_FILES]
    # One worker per platform digest: attestations of the same digest share its `.att` tag, and
    # two cosign processes appending to it at once would lose one of them.
    per_digest: list[list[tuple[DigestRef, str, Path]]] = []
    for platform, digest in sorted(image.platforms.items()):
        reports = image.scan.reports.get(platform, {})
        jobs = []
        for kind in kinds:
            report = reports.get(ATTESTATION_FILES[kind])
            if report is None:
                raise SpecError(f"sign: no {kind} report for {image.name} {platform}; run scan")
            ref = DigestRef.parse(f"{image.repository}@{digest}")
            jobs.append((ref, kind, ws.dist.parent / report))
        per_digest.append(jobs)

    def attest_all(jobs: list[tuple[DigestRef, str, Path]]) -> None:
        for ref, kind, predicate in jobs:
            cosign.attest(ref, ws.identity, kind, predicate)

    count = sum(len(jobs) for jobs in per_digest)
    # The index signature and the platform attestations live under different digests (their own
    # .sig and .att tags), so they are written at the same time.
    label = f"{image.name}: cosign sign {index_ref.digest.short()}… and {count} attestation(s)"
    with ui.progress(label), ThreadPoolExecutor(4) as pool:
        signed = pool.submit(cosign.sign, index_ref, ws.identity, signature_annotations(ws))
        list(pool.map(attest_all, per_digest))
        signed.result()
    image.signature = f"{image.repository}:{signature_tag(image.index_digest or '')}"
    image.attestations = sorted(
        {f"{image.repository}:{signature_tag(d, 'att')}" for d in image.platforms.values()}
    )
    with ui.progress(f"{image.name}: verify signature and attestations"):
        verify_digest(ws, image.repository, image.index_digest or "")
    image.verified = True
    ui.ok(f"{image.name}: signed and verified {image.index_digest}")
