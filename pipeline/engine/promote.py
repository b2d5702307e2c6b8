"""Verify-then-move for floating tags (production promotion, rollback) and `verify REF`."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline import paths, ui
from pipeline.adapters.registry import RegistryClient
from pipeline.engine.loading import load_release
from pipeline.engine.publish import promote
from pipeline.engine.verify import Verified, verify_digest
from pipeline.engine.workspace import Workspace, open_workspace
from pipeline.errors import PublishRefused, SpecError, StateError
from pipeline.refs import ImageRef
from pipeline.spec import Image, TagPolicy
from pipeline.specload import LoadedSpec
from pipeline.state import State, TagState
from pipeline.state import load as load_state
from pipeline.tags import is_immutable_name, version_tag_names
from pipeline.versions import parse_version

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def resolve_ref(ws: Workspace, text: str) -> tuple[str, str, str | None, str]:
    """(host, path, tag, digest) of a reference a person gives (the spec's registry when it
    names no host); a tag that does not exist is one line."""
    ref = ImageRef.parse(text, argument="REF")
    host = ref.host or ws.registry_host
    digest = ref.digest or ws.client_for(host).digest_of(ref.repository, ref.tag or "latest")
    if digest is None:
        raise SpecError(f"REF: {host}/{ref.repository}:{ref.tag} does not exist")
    return host, ref.repository, ref.tag, digest


def resolve_and_verify(
    text: str, *, spec: str | None, registry: str | None, allow_fixtures: bool = False
) -> Verified:
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    with open_workspace(loaded, context, tagset, registry_override=registry) as ws:
        host, path, tag, digest = resolve_ref(ws, text)
        return verify_digest(
            ws,
            f"{host}/{path}",
            digest,
            client=ws.client_for(host),
            through_tag=tag,
            allow_fixtures=allow_fixtures,
        )


def state_references(*, spec: str | None, registry: str | None) -> list[str]:
    """`repository@digest` of every image in this commit's dist/state.json."""
    loaded, context, _ = load_release(spec, os.environ, on_warning=ui.warn)
    state = load_state(paths.project_root(loaded.base_dir) / paths.STATE, commit=context.sha)
    return [image.digest_ref for image in state.images.values()]


@dataclass(frozen=True)
class Target:
    image: str
    repository: str  # host/path
    digest: str
    version: str  # the signed version whose tag names the digest


def published_version(
    client: RegistryClient, path: str, digest: str, policy: TagPolicy, hint: str | None
) -> str | None:
    """The release version whose version tag names `digest` in the registry (read back now),
    or None: a digest no version tag points at was never published by this spec."""
    candidates: list[str] = [hint] if hint else []
    for name in client.tags(path):
        parsed = parse_version(name.removeprefix(policy.prefix).removesuffix(policy.suffix))
        parsed = parsed or parse_version(name.removeprefix("v"))
        if parsed is not None and str(parsed) not in candidates:
            candidates.append(str(parsed))
    for candidate in candidates:
        for tag in version_tag_names(policy, candidate):
            if client.digest_of(path, tag) == digest:
                return candidate
    return None


def _check_arguments(
    loaded: LoadedSpec, tag: str, digest: str | None, version: str | None, names: Sequence[str]
) -> list[Image]:
    policies = [loaded.spec.tags, *(i.tags for i in loaded.spec.images if i.tags)]
    if any(is_immutable_name(policy, tag) for policy in policies):
        raise PublishRefused(
            f"--tag: {tag} is an immutable tag (a version or sha); only floating tags move"
        )
    known = {i.name: i for i in loaded.spec.images}
    for name in names:
        if name not in known:
            raise SpecError(f"--image: {name!r} is not an image of the spec ({', '.join(known)})")
    chosen = [known[n] for n in dict.fromkeys(names)] or list(known.values())
    if digest is not None:
        if not DIGEST.match(digest):
            raise SpecError(f"--digest: {digest!r} is not sha256:<64 hex>")
        if len(chosen) != 1:
            raise SpecError(
                f"--digest: a digest names one image; pass --image (one of {', '.join(known)})"
            )
    if version is not None and parse_version(version) is None:
        raise SpecError(f"--version: {version!r} is not a semver version (X.Y.Z)")
    return chosen


def _wanted(
    ws: Workspace, image: Image, digest: str | None, version: str | None, state: State | None
) -> str:
    """The digest the tag should name for `image`: given, a version's, or this run's."""
    if digest is not None:
        return digest
    if version is not None:
        names = version_tag_names(ws.tag_policy(image), version)
        found = next((d for n in names if (d := ws.client.digest_of(image.repository, n))), None)
        if found is None:
            raise PublishRefused(
                f"{ws.repository(image)}:{names[0] if names else version} does not exist: "
                f"version {version} of {image.name} was never published; nothing was moved"
            )
        return found
    entry = state.images.get(image.name) if state is not None else None
    if entry is None or not entry.index_digest:
        raise StateError(f"{paths.STATE}: no digest for {image.name}; run the release first")
    return entry.index_digest


def promote_tag(
    *,
    tag: str,
    digest: str | None,
    version: str | None,
    image_names: Sequence[str],
    spec: str | None,
    registry: str | None,
) -> None:
    """Move the floating `tag` to a published release: every image of the release set (or the
    images named), each verified first; the set moves only once all of them verify."""
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    chosen = _check_arguments(loaded, tag, digest, version, image_names)
    with open_workspace(loaded, context, tagset, registry_override=registry) as ws:
        state = None
        if digest is None and version is None:
            state = load_state(ws.path(paths.STATE), commit=context.sha)
        targets = []
        for image in chosen:
            repository = ws.repository(image)
            wanted = _wanted(ws, image, digest, version, state)
            hint = version or (state.version if state else None)
            policy = ws.tag_policy(image)
            released = published_version(ws.client, image.repository, wanted, policy, hint)
            if released is None:
                raise PublishRefused(
                    f"{repository}@{wanted} was never published: no version tag of the spec "
                    f"points at it; {tag} was not moved"
                )
            through = version_tag_names(policy, released)[0]
            with ui.progress(f"verify {repository}:{through} ({wanted[:19]}…) before promotion"):
                verify_digest(ws, repository, wanted, through_tag=through)
            targets.append(Target(image.name, repository, wanted, released))
        for target in targets:  # every image verified: now the set moves
            tags = [TagState(name=tag, immutable=False)]
            promote(ws.client, target.repository, target.digest, tags)
            verb = {"created": "now points", "moved": "moved", "unchanged": "already points"}[
                tags[0].result
            ]
            ui.ok(
                f"{target.repository}:{tag} {verb} at {target.version} ({target.digest})"
                + (f", was {tags[0].previous}" if tags[0].previous else "")
            )
