"""OCI labels and annotations: `org.opencontainers.image.*`, the same dict for both. Pure.

`created` is the commit time, never the wall clock, so a rebuild of the same commit carries the
same labels. Keys whose value is unknown or empty (no description, no version on a branch build)
are left out rather than written empty. Keys are sorted.
"""

from __future__ import annotations

from pipeline.context import ReleaseContext
from pipeline.spec import Image, Spec

PREFIX = "org.opencontainers.image."


def oci_labels(
    image: Image, spec: Spec, ctx: ReleaseContext, version: str | None
) -> dict[str, str]:
    values = {
        "title": image.name,
        "description": image.description,
        "url": spec.url or ctx.source_url,
        "source": ctx.source_url or spec.url,
        "version": version,
        "created": ctx.commit_time,
        "revision": ctx.sha,
        "licenses": image.licenses,
    }
    return {f"{PREFIX}{key}": value for key, value in sorted(values.items()) if value}
