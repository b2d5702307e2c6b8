"""Change detection: an image whose inputs are those of its last signed release is not rebuilt.

The inputs of an image's build, named by one digest (`fingerprint`):
- the files the build is sent (the context after .dockerignore, `engine.buildcontext`) and the
  Dockerfile itself (often ignored by .dockerignore, so counted on its own);
- the build arguments as passed, the target, the platforms;
- every base image by digest (another spec image by the digest this run uses); a base whose
  digest cannot be known makes the image "always rebuilt": nothing proves it did not move;
- what the image's labels say besides version, commit and time (title, description, licenses,
  URLs), and the build's own rules (`RECIPE`: the reproducible-timestamp rule and this format).

The digest is bound into the signature (`INPUTS_ANNOTATION` in the signed payload), so a later
run reads it back from the registry, not from a file of its own. A release whose inputs match the
newest signed release that has them:
- is verified (signature, attestations, attested scan against today's policy);
- is signed again, as the new version and commit (the payload also names the commit and version
  it was built as: `BUILT_REVISION`, `BUILT_VERSION`); its attestations stay as they are;
- gets the new version's tags, pointing at the same digest ("unchanged since X.Y.Z").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.adapters.cosign import signature_tag
from pipeline.adapters.registry import RegistryClient
from pipeline.engine.verify import BUILT_REVISION, BUILT_VERSION
from pipeline.errors import RegistryError
from pipeline.spec import Image, Spec, TagPolicy
from pipeline.tags import version_tag_names
from pipeline.versions import parse_version

INPUTS_ANNOTATION = "dev.pipeline-release.inputs"
VERSION = "org.opencontainers.image.version"
REVISION = "org.opencontainers.image.revision"
# The build's own rules: a change here (say, how timestamps are written) must rebuild.
RECIPE = "buildx-oci-epoch0-v1"
# How many of the newest released versions are looked at for the same inputs.
LOOK_BACK = 10


@dataclass(frozen=True)
class Inputs:
    """Everything the build of one image depends on, and its digest."""

    document: dict[str, Any]
    digest: str
    pinned: bool  # every base is known by digest (else the image is always rebuilt)
    unpinned: tuple[str, ...] = ()  # the bases whose digest is unknown


def fingerprint(
    spec: Spec,
    image: Image,
    *,
    context_digest: str,
    dockerfile: bytes,
    build_args: Mapping[str, str],
    bases: Sequence[Sequence[str | None]],
    platforms: Sequence[str],
    source_url: str | None,
) -> Inputs:
    document: dict[str, Any] = {
        "recipe": RECIPE,
        "context": context_digest,
        "dockerfile": {
            "path": image.dockerfile,
            "sha256": hashlib.sha256(dockerfile).hexdigest(),
        },
        "build_args": dict(sorted(build_args.items())),
        "target": image.target,
        "platforms": sorted(platforms),
        "bases": sorted([str(ref), digest] for ref, digest in bases),
        "labels": {
            "title": image.name,
            "description": image.description,
            "licenses": image.licenses,
            "url": spec.url or source_url or "",
            "source": source_url or spec.url or "",
        },
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    unpinned = tuple(str(ref) for ref, digest in bases if not digest)
    return Inputs(
        document=document,
        digest="sha256:" + hashlib.sha256(text.encode()).hexdigest(),
        pinned=not unpinned,
        unpinned=unpinned,
    )


def signature_payloads(client: RegistryClient, path: str, digest: str) -> list[dict[str, Any]]:
    """The simple-signing payloads of a digest's signatures, read from the registry UNVERIFIED
    (to find candidates: whatever is reused is verified with cosign first)."""
    try:
        signature = client.resolve(path, signature_tag(digest))
    except RegistryError:
        return []
    if signature is None:
        return []
    payloads = []
    for layer in signature.document.get("layers") or []:
        try:
            payload = json.loads(client.get_blob(path, str(layer.get("digest"))))
        except (ValueError, RegistryError):
            continue
        if isinstance(payload, dict):
            payloads.append(payload)
    return payloads


def annotations_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    optional = payload.get("optional")
    return dict(optional) if isinstance(optional, Mapping) else {}


@dataclass(frozen=True)
class Candidate:
    version: str  # the released version whose tag names the digest
    tag: str  # that version's tag
    digest: str
    built_revision: str | None  # the commit it was built from
    built_version: str | None  # the version it was first built and released as


def released_versions(tags: Sequence[str], policy: TagPolicy) -> list[str]:
    """The versions whose version tag is among `tags`, newest first."""
    found = {}
    for name in tags:
        core = name.removeprefix(policy.prefix).removesuffix(policy.suffix)
        version = parse_version(core) or parse_version(core.removeprefix("v"))
        if version is not None and name in version_tag_names(policy, str(version)):
            found[str(version)] = version
    return [str(v) for v in sorted(found.values(), reverse=True)]


def find_unchanged(
    client: RegistryClient, path: str, policy: TagPolicy, inputs: str, *, skip: str | None = None
) -> Candidate | None:
    """The newest released version (other than `skip`) whose digest was signed with these
    inputs, read from the registry (unverified)."""
    versions = [v for v in released_versions(client.tags(path), policy) if v != skip]
    for version in versions[:LOOK_BACK]:
        tag = version_tag_names(policy, version)[0]
        digest = client.digest_of(path, tag)
        if digest is None:
            continue
        for payload in signature_payloads(client, path, digest):
            annotations = annotations_of(payload)
            if annotations.get(INPUTS_ANNOTATION) != inputs:
                continue
            revision = annotations.get(BUILT_REVISION) or annotations.get(REVISION)
            built = annotations.get(BUILT_VERSION) or annotations.get(VERSION)
            return Candidate(
                version=version,
                tag=tag,
                digest=digest,
                built_revision=str(revision) if revision else None,
                built_version=str(built) if built else None,
            )
    return None


__all__ = ["BUILT_REVISION", "BUILT_VERSION", "INPUTS_ANNOTATION"]


def signed_as(payloads: Sequence[Mapping[str, Any]], version: str | None, revision: str) -> bool:
    """Whether one of the payloads already signs this version and commit (a re-run)."""
    return any(
        annotations_of(p).get(REVISION) == revision
        and (version is None or annotations_of(p).get(VERSION) == version)
        for p in payloads
    )
