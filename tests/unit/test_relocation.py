"""PIPELINE_REPOSITORY_BASE (GitLab's $CI_REGISTRY_IMAGE) puts the images under the project's
registry path (pipeline/relocation.py), and its host is the registry when nothing else names one."""

from __future__ import annotations

import pytest

from pipeline.errors import SpecError
from pipeline.plan import resolve_registry_host
from pipeline.relocation import relocate
from pipeline.spec import Image, Spec

ONE = Spec(name="app", images=(Image(name="web", repository="acme/sample-app"),))
TWO = Spec(
    name="app",
    images=(
        Image(name="web", repository="acme/web"),
        Image(name="worker", repository="acme/worker", context="worker"),
    ),
)
BASE = {"PIPELINE_REPOSITORY_BASE": "registry.gitlab.com/group/sub/project"}


def test_one_image_is_the_base_itself() -> None:
    (image,) = relocate(ONE, BASE).images
    assert image.repository == "group/sub/project"
    assert image.name == "web" and ONE.images[0].repository == "acme/sample-app"


def test_several_images_go_under_the_base_by_name() -> None:
    assert [i.repository for i in relocate(TWO, BASE).images] == [
        "group/sub/project/web",
        "group/sub/project/worker",
    ]


@pytest.mark.parametrize("environ", [{}, {"PIPELINE_REPOSITORY_BASE": " "}])
def test_unset_or_empty_leaves_the_spec_as_it_is(environ: dict[str, str]) -> None:
    assert relocate(ONE, environ) is ONE


def test_its_host_is_the_registry_unless_one_is_named() -> None:
    assert resolve_registry_host(ONE, None, BASE) == "registry.gitlab.com"
    named = {**BASE, "PIPELINE_REGISTRY": "mirror.example:5000"}
    assert resolve_registry_host(ONE, None, named) == "mirror.example:5000"
    assert resolve_registry_host(ONE, "other.example", named) == "other.example"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("group/project", "names no registry host; give host/path (GitLab: $CI_REGISTRY_IMAGE)"),
        ("registry.gitlab.com", "names no registry host"),
        ("registry.gitlab.com/Group/Project", "PIPELINE_REPOSITORY_BASE"),
    ],
)
def test_a_bad_base_names_the_variable(text: str, says: str) -> None:
    with pytest.raises(SpecError) as info:
        relocate(ONE, {"PIPELINE_REPOSITORY_BASE": text})
    assert says in str(info.value)
    assert str(info.value).startswith("PIPELINE_REPOSITORY_BASE")


def test_a_base_under_a_dotted_group_is_a_path() -> None:
    """$CI_REGISTRY_IMAGE of a project in the GitLab group `acme.io`."""
    environ = {"PIPELINE_REPOSITORY_BASE": "registry.gitlab.com/acme.io/shop"}
    assert [i.repository for i in relocate(TWO, environ).images] == [
        "acme.io/shop/web",
        "acme.io/shop/worker",
    ]
