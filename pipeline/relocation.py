"""The images under a repository base the CI names: GitLab's `$CI_REGISTRY_IMAGE`.

A project's GitLab registry accepts pushes only under the project's own path, which the spec
cannot know when it names the built-in `local` registry (a sandbox spec, or one written before the
project moved). With `PIPELINE_REPOSITORY_BASE=host/path` the run's images go there: one image is
`path` itself, several are `path/<image name>`; the host is the registry's unless `--registry` or
`PIPELINE_REGISTRY` say otherwise (`plan.resolve_registry_host`). Pure: a spec in, a spec out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pipeline import refs
from pipeline.errors import SpecError
from pipeline.spec import Spec

BASE_ENV = "PIPELINE_REPOSITORY_BASE"


def repository_base(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(host, path) of $PIPELINE_REPOSITORY_BASE, or None when it is unset or empty."""
    text = environ.get(BASE_ENV, "").strip()
    if not text:
        return None
    host, sep, path = text.partition("/")
    if not sep or not refs.looks_like_host(host):
        raise SpecError(
            f"{BASE_ENV}: {text!r} names no registry host; give host/path (GitLab: "
            "$CI_REGISTRY_IMAGE)"
        )
    refs.check_host(host, BASE_ENV)
    refs.check_repository(path, BASE_ENV, host_known=True)
    return host, path


def relocate(spec: Spec, environ: Mapping[str, str]) -> Spec:
    """`spec` with its images' repositories under the base, when one is set."""
    base = repository_base(environ)
    if base is None:
        return spec
    _, path = base
    several = len(spec.images) > 1
    images = tuple(
        dataclasses.replace(image, repository=f"{path}/{image.name}" if several else path)
        for image in spec.images
    )
    for image in images:
        refs.check_repository(image.repository, f"{BASE_ENV} (image {image.name})", host_known=True)
    return dataclasses.replace(spec, images=images)
