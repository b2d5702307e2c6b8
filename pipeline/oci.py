"""OCI documents: reading a layout written by buildx, platform entries of an index, and merging
per-platform indexes into one. Pure apart from reading the layout's files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")
ATTESTATION_REFERENCE = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: str | None = None  # os/arch[/variant]; None for attestation manifests

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=str(data["mediaType"]),
            digest=str(data["digest"]),
            size=int(data["size"]),
            platform=_platform(data),
        )


def _platform(data: dict[str, Any]) -> str | None:
    plat = data.get("platform")
    annotations = data.get("annotations") or {}
    if not plat or ATTESTATION_REFERENCE in annotations or plat.get("os") == "unknown":
        return None
    text = f"{plat['os']}/{plat['architecture']}"
    return f"{text}/{plat['variant']}" if plat.get("variant") else text


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def platform_digests(index: dict[str, Any]) -> dict[str, str]:
    """platform -> image manifest digest for every runnable entry (attestations skipped)."""
    found: dict[str, str] = {}
    for entry in index.get("manifests", []):
        descriptor = Descriptor.parse(entry)
        if descriptor.platform:
            found[descriptor.platform] = descriptor.digest
    return found


def merge_indexes(indexes: Sequence[dict[str, Any]], annotations: dict[str, str]) -> bytes:
    """One OCI index holding every manifest (images and their attestations) of `indexes`.

    Entries are ordered by platform then digest, so the same inputs give the same bytes.
    """
    entries: dict[str, dict[str, Any]] = {}
    for index in indexes:
        for entry in index.get("manifests", []):
            entries[entry["digest"]] = entry

    def order(entry: dict[str, Any]) -> tuple[int, str, str]:
        platform = _platform(entry)
        return (0 if platform else 1, platform or "", entry["digest"])

    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": sorted(entries.values(), key=order),
    }
    if annotations:
        document["annotations"] = dict(sorted(annotations.items()))
    return json.dumps(document, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory (buildx `--output type=oci,tar=false`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def top(self) -> Descriptor:
        index = json.loads((self.root / "index.json").read_text())
        return Descriptor.parse(index["manifests"][0])

    def ensure_index(self, digest: str, annotations: dict[str, str]) -> str:
        """The digest of the index the build exported as `digest`. A single-platform build
        exports a bare image manifest: it is wrapped in a one-entry index (written into the
        layout, with the build's index annotations), so every image is an index."""
        top = json.loads((self.root / "index.json").read_text())
        entry = next(e for e in top["manifests"] if e.get("digest") == digest)
        if entry.get("mediaType") in INDEX_TYPES:
            return digest
        wrapped = {k: entry[k] for k in ("mediaType", "digest", "size", "platform") if k in entry}
        body = merge_indexes([{"manifests": [wrapped]}], annotations)
        index_digest = digest_of(body)
        path = self.blob_path(index_digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        top["manifests"] = [{"mediaType": OCI_INDEX, "digest": index_digest, "size": len(body)}]
        (self.root / "index.json").write_text(json.dumps(top, separators=(",", ":")))
        return index_digest

    def walk(self, descriptor: Descriptor | None = None) -> Iterator[tuple[Descriptor, bytes]]:
        """Every manifest below and including `descriptor`, children before parents."""
        descriptor = descriptor or self.top()
        body = self.blob(descriptor.digest)
        if descriptor.media_type in INDEX_TYPES:
            for entry in json.loads(body).get("manifests", []):
                yield from self.walk(Descriptor.parse(entry))
        yield descriptor, body

    def platform_view(self, platform: str, dest: Path) -> tuple[Path, str]:
        """A layout at `dest` whose index names only `platform`'s image, sharing this layout's
        blobs (a symlink): what a scanner that ignores `--platform` for layouts must be given.
        Returns the view and the image's config digest (what the scanner reports as its ID)."""
        index = json.loads(self.blob(self.top().digest))
        entry = next(
            (e for e in index.get("manifests", []) if Descriptor.parse(e).platform == platform),
            None,
        )
        if entry is None:
            raise KeyError(f"{self.root}: no {platform} image in the index")
        manifest = json.loads(self.blob(str(entry["digest"])))
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (dest / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
        )
        blobs = dest / "blobs"
        if not blobs.exists():
            blobs.symlink_to((self.root / "blobs").resolve(), target_is_directory=True)
        return dest, str(manifest["config"]["digest"])

    def blobs_of(self, manifest_body: bytes) -> list[Descriptor]:
        document = json.loads(manifest_body)
        return [Descriptor.parse(document["config"])] + [
            Descriptor.parse(layer) for layer in document.get("layers", [])
        ]
