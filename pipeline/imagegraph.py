"""The build graph of a spec's images: which image is built FROM which other. Pure.

An image is built FROM another image of the spec when one of its Dockerfile's FROM lines (build
arguments applied) names that image's repository, with or without a registry host (`acme/base`,
`registry.example.com/acme/base:1`, `${REGISTRY}/acme/base`). The dependent image is then built
after the other, and uses it by digest, never by a tag: the build is given a copy of the
Dockerfile whose FROM lines name `host/acme/base@sha256:…` (`pin_dockerfile`); the user's
Dockerfile is never changed, and nothing of the FROM line enters the image.

Why not buildx's named contexts (`--build-context acme/base=docker-image://…@sha256:…`), which
do the same without a copy: measured here (BuildKit 0.13, docker driver), an image exported with
`rewrite-timestamp=true` FROM a named context had every base layer rewritten again at each build
(13 s for the sample's two platforms), FROM the same digest written in the Dockerfile 1.2 s.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser

from pipeline.errors import SpecError
from pipeline.preflight import parse_stages
from pipeline.refs import ImageRef
from pipeline.spec import Image
from pipeline.specload import LoadedSpec


@dataclass(frozen=True)
class SpecBase:
    """A FROM of one image that names another image of the spec."""

    reference: str  # as the FROM line reads, build arguments applied
    image: str  # the spec image it names


def spec_bases(
    dockerfile_text: str,
    build_args: Mapping[str, str],
    images: Sequence[Image],
    hosts: Collection[str],
    *,
    own: str,
) -> list[SpecBase]:
    """The FROM lines of a Dockerfile that name an image of the spec (other than `own`).

    A FROM names a spec image when its repository path is that image's and it carries no host
    or one of `hosts` (the spec's registry host and the one this run pushes to)."""
    by_repository = {i.repository: i.name for i in images if i.name != own}
    stages = parse_stages(dockerfile_text, build_args)
    names = {s.name for s in stages if s.name}
    found: dict[str, SpecBase] = {}
    for stage in stages:
        base = stage.base
        if not base or base == "scratch" or base in names or "$" in base:
            continue
        try:
            ref = ImageRef.parse(base, argument="FROM")
        except SpecError:
            continue
        name = by_repository.get(ref.repository)
        if name is not None and (ref.host is None or ref.host in hosts):
            found.setdefault(base, SpecBase(base, name))
    return list(found.values())


def build_order(images: Sequence[str], needs: Mapping[str, Collection[str]]) -> list[str]:
    """The images in an order where each comes after every image it is built FROM (spec order
    otherwise); a cycle is a spec error naming it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            raise SpecError(
                f"images: {' -> '.join(cycle)} are built FROM each other (a cycle); "
                "an image can only be built FROM images built before it"
            )
        state[name] = "visiting"
        for dependency in sorted(needs.get(name, ()), key=images.index):
            if dependency in images:
                visit(dependency, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in images:
        visit(name, [])
    return order


def spec_graph(
    loaded: LoadedSpec,
    build_args: Mapping[str, Mapping[str, str]],
    hosts: Collection[str],
) -> dict[str, list[SpecBase]]:
    """image name -> the FROM lines of its Dockerfile that name other images of the spec (build
    arguments per image as the build will use them); reads the Dockerfiles."""
    images = loaded.spec.images
    graph: dict[str, list[SpecBase]] = {}
    for image in images:
        dockerfile = loaded.resolve(image.context) / image.dockerfile
        text = dockerfile.read_text() if dockerfile.is_file() else ""
        args = build_args.get(image.name, image.build_args)
        graph[image.name] = spec_bases(text, args, images, hosts, own=image.name)
    return graph


def references(graph: Mapping[str, Sequence[SpecBase]]) -> dict[str, frozenset[str]]:
    """image name -> the FROM references naming spec images (what preflight leaves alone)."""
    return {name: frozenset(b.reference for b in bases) for name, bases in graph.items()}


def pin_dockerfile(text: str, build_args: Mapping[str, str], pins: Mapping[str, str]) -> str:
    """The Dockerfile with every FROM whose image (build arguments applied) is a key of `pins`
    naming `pins[key]` instead (`host/repo@sha256:…`); every other line as written."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), build_args=dict(build_args))
    resolved = [s.base for s in parse_stages(text, build_args)]
    lines = text.splitlines(keepends=True)
    froms = [item for item in parser.structure if item["instruction"] == "FROM"]
    for item, base in zip(froms, resolved, strict=False):
        if base not in pins:
            continue
        words = item["value"].split()
        at = next(i for i, w in enumerate(words) if not w.startswith("--"))
        words[at] = pins[base]
        first, last = item["startline"], item["endline"]
        lines[first] = f"FROM {' '.join(words)}\n"
        for index in range(first + 1, last + 1):
            lines[index] = "\n"  # a continued FROM: its other lines are now in the first
    return "".join(lines)
