"""rebuild-check: anyone can rebuild a released tag from its commit and compare digests.

The release is verified first (signature, attestations, provenance); its signature names the
commit and version, its provenance the build arguments (the base images by digest among them).
A clean checkout of that commit (a `git worktree`, removed afterwards) is built exactly as the
release was (same labels, SOURCE_DATE_EPOCH from the commit, timestamps rewritten), nothing is
pushed, and the index and every platform digest are compared. `--working-tree` builds the
current checkout instead: does what I have here reproduce the release?
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.table import Table

from pipeline import paths, ui
from pipeline.adapters.git import commit_epoch, detached_checkout
from pipeline.context import utc_from_epoch
from pipeline.engine.build import PinnedBase, build_image, ws_graph
from pipeline.engine.loading import load_release
from pipeline.engine.promote import resolve_ref
from pipeline.engine.verify import verify_digest
from pipeline.engine.workspace import Workspace, open_workspace
from pipeline.errors import SpecError, VerifyFailed
from pipeline.specload import load_spec
from pipeline.tags import TagSet


@dataclass(frozen=True)
class Comparison:
    what: str  # "index" or a platform
    released: str
    rebuilt: str | None

    @property
    def equal(self) -> bool:
        return self.released == self.rebuilt


def table(ref: str, rows: list[Comparison]) -> Table:
    out = Table(title=f"Rebuild of {ref}")
    for column in ("Image", "Released", "Rebuilt", "Result"):
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(
            row.what, row.released, row.rebuilt or "—", "equal" if row.equal else "DIFFERENT"
        )
    return out


def rebuild_check(
    *, ref: str, spec: str | None, registry: str | None, working_tree: bool = False
) -> None:
    loaded, context, tagset = load_release(spec, os.environ, on_warning=ui.warn)
    steps = frozenset({"build"})
    with open_workspace(loaded, context, tagset, registry_override=registry, steps=steps) as ws:
        host, path, tag, digest = resolve_ref(ws, ref)
        image = next((i for i in ws.spec.images if i.repository == path), None)
        if image is None:
            raise SpecError(f"REF: {path} is not a repository of the spec")
        repository = f"{host}/{path}"
        with ui.progress(f"verify {repository}@{digest[:19]}… before rebuilding it"):
            verified = verify_digest(
                ws, repository, digest, client=ws.client_for(host), through_tag=tag
            )
        # An unchanged image re-signed for a later version was built from an earlier commit.
        commit = verified.built_revision or verified.revision
        if not commit:
            raise VerifyFailed(f"{repository}@{digest}: its signature names no commit")
        built_with = (verified.provenance.get("buildDefinition") or {}).get(
            "externalParameters"
        ) or {}
        build_args = {str(k): str(v) for k, v in (built_with.get("buildArgs") or {}).items()}
        source_repository = (built_with.get("source") or {}).get("repository")
        root = paths.project_root(ws.loaded.base_dir)
        spec_in_repo = ws.loaded.path.relative_to(root)
        scratch = ws.scratch / "rebuild"
        with _source(root, commit, scratch / "src", working_tree=working_tree) as source:
            rebuilt_spec = load_spec(source / spec_in_repo)
            epoch = commit_epoch(root, commit)
            rebuild = replace(
                ws,
                loaded=rebuilt_spec,
                context=replace(
                    ws.context,
                    sha=commit,
                    commit_time=utc_from_epoch(epoch),
                    dirty=False,
                    source_url=source_repository or ws.context.source_url,
                ),
                tagset=TagSet(
                    version=verified.built_version or verified.version, tags=(), publish=False
                ),
                release=None,
                dist=scratch / "dist",
                build_args_override={image.name: build_args} if build_args else {},
            )
            source_image = next(i for i in rebuilt_spec.spec.images if i.name == image.name)
            label = f"rebuild {image.name} from {'this checkout' if working_tree else commit[:12]}"
            bases = _spec_bases(rebuild, source_image.name, verified.provenance)
            with ui.progress(label):
                state = build_image(
                    rebuild, source_image, tuple(sorted(verified.platforms)), bases=bases
                )
        rows = [Comparison("index", digest, state.index_digest)]
        rows += [
            Comparison(platform, released, state.platforms.get(platform))
            for platform, released in sorted(verified.platforms.items())
        ]
        ui.table(table(ref, rows))
        different = [row.what for row in rows if not row.equal and row.what != "index"]
        if different or not rows[0].equal:
            what = ", ".join(different) if different else "the index only"
            raise VerifyFailed(
                f"rebuild-check: {ref} rebuilt from {commit[:12]} is different ({what}): the "
                "release does not reproduce from its source"
            )
        ui.ok(f"rebuild-check: {ref} rebuilt from {commit[:12]} is equal, index and platforms")


def _spec_bases(ws: Workspace, name: str, provenance: dict[str, Any]) -> list[PinnedBase]:
    """The spec images the release was built FROM, by the digests its provenance lists."""
    dependencies = (provenance.get("buildDefinition") or {}).get("resolvedDependencies") or []
    digests = {
        str(d.get("uri", "")).removeprefix("pkg:docker/"): (d.get("digest") or {}).get("sha256")
        for d in dependencies
        if isinstance(d, dict)
    }
    found = []
    for base in ws_graph(ws).get(name, []):
        digest = digests.get(base.reference)
        if not digest:
            raise VerifyFailed(
                f"rebuild-check: the provenance names no digest for {base.reference}, the spec "
                "image it was built FROM"
            )
        other = ws.image(base.image)
        found.append(
            PinnedBase(base.reference, other.name, ws.repository(other), f"sha256:{digest}")
        )
    return found


def _source(
    root: Path, commit: str, dest: Path, *, working_tree: bool
) -> contextlib.AbstractContextManager[Path]:
    if working_tree:
        return contextlib.nullcontext(root)
    return detached_checkout(root, commit, dest)
