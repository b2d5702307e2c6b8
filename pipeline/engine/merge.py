"""Merge: per-platform builds from separate CI jobs (each on its own native runner, each pushed
by digest) become one OCI index, pushed by digest. Scan, sign and publish follow as usual.
"""

from __future__ import annotations

import json

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
    for image in ws.spec.images:
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
        labels = oci_labels(image, ws.spec, ws.context, ws.tagset.version)
        body = oci.merge_indexes(indexes, labels)
        digest = oci.digest_of(body)
        ws.client.put_manifest(path, digest, Manifest(digest, oci.OCI_INDEX, body))
        platforms = oci.platform_digests(json.loads(body))
        state.images[image.name] = ImageState(
            name=image.name, repository=repository, index_digest=digest, platforms=platforms
        )
        ui.ok(f"{image.name}: merged {len(pieces)} build(s) into {repository}@{digest}")
