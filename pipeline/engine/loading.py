"""Loading a run: the spec, the release context (CI variables, event payload, the git checkout)
and the tags it publishes. The one place where the pure context detection meets the git reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline import tags
from pipeline.adapters.git import read_git_facts
from pipeline.context import GitFacts, ReleaseContext, detect, in_ci
from pipeline.errors import GitError
from pipeline.relocation import relocate
from pipeline.specload import LoadedSpec, load
from pipeline.tags import TagSet


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def load_context(
    loaded: LoadedSpec,
    environ: Mapping[str, str],
    *,
    read_git: Callable[[Path], GitFacts] | None = None,
) -> ReleaseContext:
    """The context of this run: the real event file and the checkout holding the spec file
    (read by `read_git`, the git adapter unless a test gives fixed facts)."""
    try:
        facts: GitFacts | None = (read_git or read_git_facts)(loaded.base_dir)
    except GitError:
        if not in_ci(environ):
            raise
        facts = None  # CI variables name the commit; the checkout only adds releases and time
    return detect(
        environ,
        read_event=_read_text,
        git=facts,
        release_tag=loaded.spec.tags.release_tag,
        default_branch=loaded.spec.ci.default_branch,
        image_release_tags=tuple(i.release_tag for i in loaded.spec.images if i.release_tag),
    )


def load_release(
    spec: str | None,
    environ: Mapping[str, str],
    *,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[LoadedSpec, ReleaseContext, TagSet]:
    """The spec, the context and the tags of this run (the run's: its version and whether it
    publishes; each image's own tags are `tags.release_set`); each tag warning goes to
    `on_warning`. Rich is not imported here: `pipeline tags` starts in a fraction of a second."""
    loaded = load(spec)
    # GitLab's $CI_REGISTRY_IMAGE (PIPELINE_REPOSITORY_BASE): the images under the project's path
    loaded = dataclasses.replace(loaded, spec=relocate(loaded.spec, environ))
    context = load_context(loaded, environ)
    tagset = tags.release_set(loaded.spec, context).tagset
    if on_warning is not None:
        for warning in tagset.warnings:
            on_warning(warning)
    return loaded, context, tagset
