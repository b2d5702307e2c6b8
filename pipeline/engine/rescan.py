"""Rescan: released digests scanned again with today's DB, after release.

A release passed the gate against the DB of its day; advisories published since can make it
vulnerable. `pipeline rescan` takes released digests (the version tags given, or every version tag
of the spec's repositories), checks each is a signed release, scans every platform image again,
attests the new results (a new vulnerability attestation with today's timestamp, on the platform
and on the index, where `verify` and admission controllers read the newest), reports the findings
that are new since the release, and fails (exit 8) when a released image no longer meets the
policy. Nothing is re-tagged: a failing image simply stops verifying.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from pipeline import gate, oci, paths, ui
from pipeline.adapters.cosign import Cosign
from pipeline.engine.loading import load_release
from pipeline.engine.scan import Job, fetch_db, scan_platform
from pipeline.engine.verify import split_repository
from pipeline.engine.workspace import Workspace, open_workspace
from pipeline.errors import GateFailed, SpecError, VerifyFailed
from pipeline.refs import DigestRef, ImageRef
from pipeline.tags import version_tag_names
from pipeline.versions import parse_version

RESCAN_DIR = paths.DIST / "rescan"


@dataclass(frozen=True)
class Target:
    image: str
    repository: str  # host/path
    tag: str  # the version tag it was reached through
    digest: str


@dataclass
class Outcome:
    target: Target
    platform: str
    verdict: gate.Verdict
    new: list[gate.Finding] = field(default_factory=list)


def targets(ws: Workspace, refs: Sequence[str]) -> list[Target]:
    """The released digests to rescan: the references given, else every version tag."""
    images = {image.repository: image.name for image in ws.spec.images}
    found: list[Target] = []
    if refs:
        for text in refs:
            ref = ImageRef.parse(text, argument="REF")
            host = ref.host or ws.registry_host
            if ref.repository not in images:
                raise SpecError(
                    f"REF: {ref.repository} is not a repository of the spec "
                    f"({', '.join(sorted(images))})"
                )
            if not ref.tag:
                raise SpecError(f"REF: {text} names no version tag (repository:X.Y.Z)")
            digest = ref.digest or ws.client_for(host).digest_of(ref.repository, ref.tag)
            if digest is None:
                raise SpecError(f"REF: {host}/{ref.repository}:{ref.tag} does not exist")
            repository = f"{host}/{ref.repository}"
            found.append(Target(images[ref.repository], repository, ref.tag, digest))
        return found
    for image in ws.spec.images:
        seen: set[str] = set()
        policy = ws.tag_policy(image)
        for name in ws.client.tags(image.repository):
            core = name.removeprefix(policy.prefix).removesuffix(policy.suffix)
            version = parse_version(core.removeprefix("v"))
            if version is None or name not in version_tag_names(policy, str(version)):
                continue
            digest = ws.client.digest_of(image.repository, name)
            if digest and digest not in seen:
                seen.add(digest)
                found.append(Target(image.name, ws.repository(image), name, digest))
    return found


def _rescan(
    ws: Workspace, cosign: Cosign, target: Target, database: dict[str, Any]
) -> list[Outcome]:
    _, path = split_repository(target.repository)
    manifest = ws.client.resolve(path, target.digest)
    if manifest is None:
        raise VerifyFailed(f"{target.repository}@{target.digest} does not exist")
    index = DigestRef.parse(f"{target.repository}@{target.digest}")
    cosign.verify(index, ws.identity)  # only a signed release is rescanned and re-attested
    platforms = oci.platform_digests(manifest.document)
    folder = ws.dist / "rescan" / target.image / target.tag
    trivy = ws.trivy()

    def one(item: tuple[str, str]) -> Outcome:
        platform, digest = item
        ref = DigestRef.parse(f"{target.repository}@{digest}")
        before = cosign.verify_attestation(ref, ws.identity, "vuln")
        old = {(f.id, f.package) for f in _findings(before, platform)}
        job = Job(target.image, platform, str(ref), False, folder, target.repository, digest)
        report = scan_platform(ws, trivy, job, database)
        now = gate.findings(report, platform)
        return Outcome(
            target,
            platform,
            gate.evaluate(now, ws.spec.scan),
            [f for f in now if (f.id, f.package) not in old],
        )

    with ThreadPoolExecutor(max_workers=max(1, min(len(platforms), 4))) as pool:
        outcomes = list(pool.map(one, sorted(platforms.items())))
    # The new results are attested, the passing and the failing: verify reads the newest.
    jobs = [(index, o.platform) for o in outcomes]
    jobs += [
        (DigestRef.parse(f"{target.repository}@{platforms[o.platform]}"), o.platform)
        for o in outcomes
    ]

    def attest(ref_and_platform: tuple[DigestRef, str]) -> None:
        ref, platform = ref_and_platform
        job = Job(target.image, platform, "", False, folder, target.repository, "")
        cosign.attest(ref, ws.identity, "vuln", job.path("cosign-vuln"))

    for ref_and_platform in jobs[: len(outcomes)]:  # the index's, one after another
        attest(ref_and_platform)
    with ThreadPoolExecutor(max_workers=4) as pool:  # each platform's own .att at once
        list(pool.map(attest, jobs[len(outcomes) :]))
    return outcomes


def _findings(statements: list[dict[str, Any]], platform: str) -> list[gate.Finding]:
    if not statements:
        return []
    result = ((statements[-1].get("predicate") or {}).get("scanner") or {}).get("result")
    return gate.findings(result, platform) if isinstance(result, dict) else []


def table(outcomes: Sequence[Outcome]) -> Table:
    out = Table(title="Rescan with today's vulnerability DB")
    for column in ("Image", "Release", "Platform", "Verdict", "New since release"):
        out.add_column(column, overflow="fold")
    for o in outcomes:
        new = ", ".join(f"{f.severity} {f.id} ({f.package})" for f in o.new) or "none"
        out.add_row(
            o.target.image,
            o.target.tag,
            o.platform,
            "pass" if o.verdict.passed else "FAIL",
            new,
        )
    return out


def run_rescan(*, refs: Sequence[str], spec: str | None, registry: str | None) -> None:
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    steps = frozenset({"scan", "sign"})
    with open_workspace(loaded, context, tagset, registry_override=registry, steps=steps) as ws:
        _ = ws.signing  # the key decrypts before anything is scanned
        chosen = targets(ws, refs)
        if not chosen:
            ui.ok("rescan: no released version to rescan")
            return
        database = fetch_db(ws, ws.trivy())
        cosign = ws.cosign()
        outcomes: list[Outcome] = []
        for target in chosen:
            label = f"rescan {target.repository}:{target.tag} ({target.digest[:19]}…)"
            with ui.progress(label):
                outcomes += _rescan(ws, cosign, target, database)
        ui.table(table(outcomes))
        failing = [o for o in outcomes if not o.verdict.passed]
        if failing:
            first = failing[0]
            worst = first.verdict.blocking[0]
            new = " (new since release)" if worst in first.new else ""
            raise GateFailed(
                f"rescan: {len({o.target for o in failing})} released image(s) no longer meet "
                f"the policy; {first.target.repository}:{first.target.tag} {first.platform}: "
                f"{worst.severity} {worst.id} in {worst.package}{new}; the new results are "
                "attested, so verify and promotion now refuse it"
            )
        ui.ok(f"rescan: {len(chosen)} release(s) still meet the policy (results attested)")
