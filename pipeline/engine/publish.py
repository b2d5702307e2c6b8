"""Publish: point every computed tag at the exact digest that was scanned and signed.

- All tags are checked before any is written. An immutable tag (full version, sha-…) that already
  names another digest refuses the whole promotion: nothing changes, and the error names the tag
  and both digests. The same digest is a no-op ("already published"); floating tags move.
- Tags are written by re-PUTting the index manifest's exact bytes: nothing is rebuilt, the digest
  cannot change. The sha tag first, the other immutable tags next, floating tags last.
- A process-wide file lock per repository serialises concurrent promotions on this machine; each
  written tag is read back, so a race with another machine is detected and reported.
- A failure part-way is reported tag by tag; a re-run completes the remaining tags.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from rich.table import Table

from pipeline import ui
from pipeline.adapters.docker_cli import DockerCli
from pipeline.adapters.registry import Credentials, Manifest, RegistryClient
from pipeline.engine import changes
from pipeline.engine.verify import split_repository
from pipeline.engine.workspace import Workspace
from pipeline.errors import PublishRefused, RegistryError, SpecError
from pipeline.filelock import locked
from pipeline.refs import DigestRef
from pipeline.sandbox.cache import cache_dir
from pipeline.spec import Mirror
from pipeline.state import ImageState, State, TagState


@dataclass(frozen=True)
class TagAction:
    tag: TagState
    current: str | None  # digest the tag names now, if any

    @property
    def kind(self) -> str:
        return "create" if self.current is None else "move"


def ensure_publishable(image: ImageState) -> None:
    if image.reused:
        return
    if image.scan is None or image.scan.verdict != "pass":
        raise PublishRefused(
            f"{image.name}: {image.index_digest} has no passing scan; nothing was tagged"
        )
    if not image.verified or not image.signature:
        raise PublishRefused(
            f"{image.name}: {image.index_digest} is not signed and verified; nothing was tagged"
        )


def promotion_lock(repository: str) -> contextlib.AbstractContextManager[None]:
    name = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return locked(cache_dir() / "locks" / f"{name}.lock")


def refuse_early(ws: Workspace) -> None:
    """Before anything is built: an immutable tag this run would write that already names a
    digest released from another commit stops the run now (nothing built, signed or pushed).
    The same commit's own release (its sha tag names the same digest) is reused instead."""
    for image in ws.images:
        tagset = ws.tagset_for(image)
        sha_tag = tagset.sha_tag
        immutable = [t.name for t in tagset.tags if t.immutable and t.name != sha_tag]
        if not immutable:
            continue
        ours = ws.client.digest_of(image.repository, sha_tag) if sha_tag else None
        for name in immutable:
            current = ws.client.digest_of(image.repository, name)
            if current is None or current == ours:
                continue
            # A run of this very commit killed part-way through publishing: its digest is
            # signed for this commit (read, not verified: publish still refuses any other
            # digest; this only decides not to stop before the build).
            if ws.context.sha in signed_revisions(ws.client, image.repository, current):
                continue
            raise PublishRefused(
                f"{ws.repository(image)}:{name} already names {current}, released from "
                f"another commit; immutable tags never move (release a new version); "
                "nothing was built, signed or pushed"
            )


def signed_revisions(client: RegistryClient, path: str, digest: str) -> set[str]:
    """The commits a digest's signatures name (unverified): one per release of it."""
    found = set()
    for payload in changes.signature_payloads(client, path, digest):
        revision = changes.annotations_of(payload).get("org.opencontainers.image.revision")
        if isinstance(revision, str):
            found.add(revision)
    return found


def plan_tags(
    client: RegistryClient, path: str, digest: str, tags: list[TagState]
) -> tuple[list[TagAction], list[str]]:
    """What each tag needs, and the refusals (immutable tags naming another digest)."""
    actions: list[TagAction] = []
    conflicts: list[str] = []
    for tag in tags:
        current = client.digest_of(path, tag.name)
        if current == digest:
            tag.result = "unchanged"
        elif current is not None and tag.immutable:
            tag.result = "refused"
            conflicts.append(
                f"immutable tag {tag.name} already points at {current}, not at this release's "
                f"{digest}"
            )
        else:
            tag.previous = current
            actions.append(TagAction(tag, current))
    return actions, conflicts


def promote(
    client: RegistryClient,
    repository: str,
    digest: str,
    tags: list[TagState],
    *,
    first: str | None = None,
) -> None:
    """Point `tags` at `digest` in `repository` (host/path) with the rules above."""
    _, path = split_repository(repository)
    with promotion_lock(repository):
        manifest = client.resolve(path, digest)
        if manifest is None:
            raise PublishRefused(
                f"{repository}@{digest} is not in the registry; nothing was tagged"
            )
        actions, conflicts = plan_tags(client, path, digest, tags)
        if conflicts:
            raise PublishRefused(f"{repository}: {conflicts[0]}; nothing was changed")
        # The sha tag first (a re-run after a kill finds the commit's release by it), then the
        # other immutable tags, the floating ones last.
        ordered = sorted(actions, key=lambda a: (a.tag.name != first, not a.tag.immutable))
        for action in ordered:
            try:
                client.put_manifest(
                    path, action.tag.name, Manifest(digest, manifest.media_type, manifest.body)
                )
                now = client.digest_of(path, action.tag.name)
                if now != digest:
                    raise PublishRefused(
                        f"tag {action.tag.name} was re-pointed to {now} by someone else while "
                        f"this release wrote {digest}"
                    )
            except (RegistryError, PublishRefused) as exc:
                action.tag.result = "failed"
                _print_tags(repository, tags)
                done = sum(t.result in ("created", "moved", "unchanged") for t in tags)
                raise type(exc)(
                    f"{exc.message}; {done} of {len(tags)} tag(s) published (listed above); "
                    "re-run to finish"
                ) from None
            action.tag.result = "created" if action.current is None else "moved"


def run_publish(ws: Workspace, state: State) -> None:
    """The set is published whole: every image checked first (signed and verified, no immutable
    tag naming another digest in any repository), then each image's tags written."""
    if not ws.push:
        ui.ok("publish: pull request context: nothing is pushed, signed or tagged")
        return
    images = [state.images[i.name] for i in ws.images if i.name in state.images]
    for image in images:
        ensure_publishable(image)
    for image in images:
        tagset = ws.tagset_for(ws.image(image.name))
        image.tags = [TagState(name=t.name, immutable=t.immutable) for t in tagset.tags]
    conflicts = []
    for image in images:
        probe = [TagState(name=t.name, immutable=t.immutable) for t in image.tags]
        _, path = split_repository(image.repository)
        _, found = plan_tags(ws.client, path, image.index_digest or "", probe)
        conflicts += [f"{image.repository}: {c}" for c in found]
    if conflicts:
        raise PublishRefused(f"{conflicts[0]}; no image of the release was tagged")
    for image in images:
        promote(
            ws.client,
            image.repository,
            image.index_digest or "",
            image.tags,
            first=ws.tagset_for(ws.image(image.name)).sha_tag,
        )
        _print_tags(image.repository, image.tags)
        for mirror in ws.spec.publish.mirrors:
            image.mirrors.append(_mirror(ws, image, mirror))


def _mirror_client(ws: Workspace, mirror: Mirror) -> RegistryClient:
    """The mirror's client; credentials named by the spec are also logged in for cosign."""
    if not (mirror.username_env and mirror.password_env):
        return ws.client_for(mirror.host)
    user = ws.environ.get(mirror.username_env, "")
    password = ws.environ.get(mirror.password_env, "")
    if not user or not password:
        missing = mirror.username_env if not user else mirror.password_env
        raise SpecError(f"publish.mirrors ({mirror.host}): {missing} is not set")
    client = ws.client_for(mirror.host)
    client.credentials = Credentials(user, password)
    DockerCli(ws.runner).login(mirror.host, user, password)
    return client


def _mirror(ws: Workspace, image: ImageState, mirror: Mirror) -> str:
    """Copy the signed digest with its signature and attestations, then tag it the same way."""
    _, path = split_repository(image.repository)
    target = f"{mirror.host}/{mirror.repository or path}"
    first = image.tags[0].name if image.tags else "latest"
    client = _mirror_client(ws, mirror)
    mirror_tags = [TagState(name=t.name, immutable=t.immutable) for t in image.tags]
    _, mpath = split_repository(target)
    _actions, conflicts = plan_tags(client, mpath, image.index_digest or "", mirror_tags)
    if conflicts:
        raise PublishRefused(f"mirror {target}: {conflicts[0]}; the mirror was not changed")
    with ui.progress(f"{image.name}: copy to mirror {target}"):
        ws.cosign().copy(DigestRef.parse(image.digest_ref), f"{target}:{first}")
    for tag in mirror_tags:
        tag.result = "pending"
    promote(client, target, image.index_digest or "", mirror_tags)
    return target


def _print_tags(repository: str, tags: list[TagState]) -> None:
    table = Table(title=f"Tags of {repository}")
    for column in ("Tag", "Class", "Result"):
        table.add_column(column)
    labels = {
        "created": "created",
        "moved": "moved",
        "unchanged": "already published",
        "pending": "not written",
        "failed": "FAILED",
        "refused": "refused",
    }
    for tag in tags:
        result = labels.get(tag.result, tag.result)
        if tag.result == "moved" and tag.previous:
            result += f" (was {tag.previous[:19]}…)"
        table.add_row(tag.name, "immutable" if tag.immutable else "floating", result)
    ui.table(table)
