"""Verify-then-move for floating tags (production promotion, rollback) and `verify REF`."""

from __future__ import annotations

import os
import re

from pipeline import paths, ui
from pipeline.adapters.registry import RegistryClient, docker_config_credentials
from pipeline.engine.loading import load_release
from pipeline.engine.publish import promote
from pipeline.engine.verify import Verified, verify_digest
from pipeline.engine.workspace import open_workspace
from pipeline.errors import PublishRefused, SpecError
from pipeline.refs import ImageRef
from pipeline.state import TagState
from pipeline.state import load as load_state
from pipeline.tags import is_immutable_name

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def resolve_and_verify(text: str, *, spec: str | None, registry: str | None) -> Verified:
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    with open_workspace(loaded, context, tagset, registry_override=registry) as ws:
        ref = ImageRef.parse(text, argument="REF")
        host = ref.host or ws.registry_host
        client = ws.client
        if host != ws.registry_host:
            client = RegistryClient(
                host,
                credentials=docker_config_credentials(host, ws.runner.env),
                retry=ws.spec.retry,
            )
        digest = ref.digest or (client.digest_of(ref.repository, ref.tag or "latest"))
        if digest is None:
            raise SpecError(f"REF: {host}/{ref.repository}:{ref.tag} does not exist")
        return verify_digest(
            ws, f"{host}/{ref.repository}", digest, client=client, through_tag=ref.tag
        )


def state_references(*, spec: str | None, registry: str | None) -> list[str]:
    """`repository@digest` of every image in this commit's dist/state.json."""
    loaded, context, _ = load_release(spec, os.environ, on_warning=ui.warn)
    state = load_state(paths.project_root(loaded.base_dir) / paths.STATE, commit=context.sha)
    return [image.digest_ref for image in state.images.values()]


def promote_tag(
    *, tag: str, digest: str | None, image_name: str | None, spec: str | None, registry: str | None
) -> None:
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    if is_immutable_name(loaded.spec.tags, tag):
        raise PublishRefused(
            f"--tag: {tag} is an immutable tag (a version or sha); only floating tags move"
        )
    images = {i.name: i for i in loaded.spec.images}
    if image_name is None:
        if len(images) != 1:
            raise SpecError(
                f"--image: the spec has {len(images)} images; name one of {', '.join(images)}"
            )
        image_name = next(iter(images))
    if image_name not in images:
        raise SpecError(
            f"--image: {image_name!r} is not an image of the spec ({', '.join(images)})"
        )
    if digest is not None and not DIGEST.match(digest):
        raise SpecError(f"--digest: {digest!r} is not sha256:<64 hex>")
    with open_workspace(loaded, context, tagset, registry_override=registry) as ws:
        repository = ws.repository(images[image_name])
        if digest is None:
            state = load_state(ws.path(paths.STATE), commit=context.sha)
            digest = state.images[image_name].index_digest
            if digest is None:
                raise SpecError(f"{paths.STATE}: no digest for {image_name}")
        with ui.progress(f"verify {repository}@{digest[:19]}… before promotion"):
            verify_digest(ws, repository, digest)
        tags = [TagState(name=tag, immutable=False)]
        promote(ws.client, repository, digest, tags)
        verb = {"created": "now points", "moved": "moved", "unchanged": "already points"}[
            tags[0].result
        ]
        ui.ok(
            f"{repository}:{tag} {verb} at {digest}"
            + (f" (was {tags[0].previous})" if tags[0].previous else "")
        )
