"""Merge: one OCI index from per-platform builds, by digest; scan, sign and publish follow.

Two ways in, one merge (`oci.merge_indexes`):
- `run_merge`: per-platform builds from separate CI jobs (each on its own native runner, each
  pushed by digest) are read back from the registry and their index pushed by digest;
- `merge_layouts`: per-platform builds of one run on native builders (`engine.builders`) come
  back as OCI layouts; they become one layout holding every blob and the merged index, which
  the build then pushes like any other.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from pipeline import oci, paths, ui
from pipeline import state as state_file
from pipeline.adapters.registry import Manifest
from pipeline.engine.verify import split_repository
from pipeline.engine.workspace import Workspace
from pipeline.errors import SpecError
from pipeline.labels import oci_labels
from pipeline.state import ImageState, State


def run_merge(ws: Workspace, state: State) -> None:
    folder = ws.path(paths.PLATFORM_STATES)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SpecError(f"merge: no per-platform state in {folder}; run `build --platform P` first")
    parts = [state_file.load(path, commit=ws.context.sha) for path in files]
    for image in ws.images:
        pieces = [part.images[image.name] for part in parts if image.name in part.images]
        built = {p for piece in pieces for p in piece.platforms}
        missing = [p for p in image.platforms if p not in built]
        if missing:
            raise SpecError(
                f"merge: image {image.name} has no build for {', '.join(missing)} in {folder}"
            )
        repository = ws.repository(image)
        _, path = split_repository(repository)
        indexes = []
        for piece in pieces:
            manifest = ws.client.resolve(path, piece.index_digest or "")
            if manifest is None:
                raise SpecError(f"merge: {repository}@{piece.index_digest} is not in the registry")
            indexes.append(manifest.document)
        labels = oci_labels(image, ws.spec, ws.context, ws.tagset_for(image).version)
        body = oci.merge_indexes(indexes, labels)
        digest = oci.digest_of(body)
        ws.client.put_manifest(path, digest, Manifest(digest, oci.OCI_INDEX, body))
        platforms = oci.platform_digests(json.loads(body))
        first = pieces[0]
        state.images[image.name] = ImageState(
            name=image.name,
            repository=repository,
            index_digest=digest,
            platforms=platforms,
            build_args=first.build_args,
            base_images=first.base_images,
            context_digest=first.context_digest,
            needs=first.needs,
        )
        ui.ok(f"{image.name}: merged {len(pieces)} build(s) into {repository}@{digest}")


def merge_layouts(
    pieces: Sequence[tuple[oci.Layout, str]], dest: Path, annotations: dict[str, str]
) -> str:
    """One layout at `dest` with every blob of the per-platform `pieces` ((layout, the digest
    its build exported)) and their merged index; returns the index digest. The pieces' folders
    are removed (their blobs are linked, not copied, where the file system allows)."""
    shutil.rmtree(dest, ignore_errors=True)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    indexes = []
    for layout, digest in pieces:
        index_digest = layout.ensure_index(digest, annotations)
        indexes.append(json.loads(layout.blob(index_digest)))
        for blob in (layout.root / "blobs" / "sha256").iterdir():
            target = blobs / blob.name
            if not target.exists():
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copyfile(blob, target)
    body = oci.merge_indexes(indexes, annotations)
    digest = oci.digest_of(body)
    (blobs / digest.removeprefix("sha256:")).write_bytes(body)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    top = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_INDEX,
        "manifests": [{"mediaType": oci.OCI_INDEX, "digest": digest, "size": len(body)}],
    }
    (dest / "index.json").write_text(json.dumps(top, separators=(",", ":")))
    for layout, _ in pieces:
        if layout.root != dest:
            shutil.rmtree(layout.root, ignore_errors=True)
    return digest
