"""The plan: spec + context + tags -> what will be built, for which platforms, which tags each
image gets, what is scanned and signed. Pure; `pipeline plan` is just printing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.context import ReleaseContext
from pipeline.labels import oci_labels
from pipeline.refs import check_host
from pipeline.relocation import repository_base
from pipeline.spec import LOCAL_REGISTRY, Spec
from pipeline.specload import LoadedSpec
from pipeline.tags import TagSet

STAGES = ("preflight", "build", "scan", "sign", "publish")
PR_STAGES = ("preflight", "build", "scan")


@dataclass(frozen=True)
class ImagePlan:
    name: str
    repository: str
    platforms: tuple[str, ...]
    context: str
    dockerfile: str
    target: str | None
    test_target: str | None
    tags: tuple[tuple[str, bool], ...]  # (name, immutable)
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    context: ReleaseContext
    version: str | None
    registry: str
    publish: bool
    stages: tuple[str, ...]
    images: tuple[ImagePlan, ...]
    warnings: tuple[str, ...]
    fail_on: tuple[str, ...]
    ignore_unfixed: bool
    attestations: tuple[str, ...]
    signing: str


def resolve_registry_host(spec: Spec, override: str | None, environ: Mapping[str, str]) -> str:
    """`--registry`, then PIPELINE_REGISTRY, then the host of PIPELINE_REPOSITORY_BASE (GitLab's
    $CI_REGISTRY_IMAGE), then the spec (`local`: the built-in registry)."""
    if override:
        return check_host(override, "--registry")
    if environ.get("PIPELINE_REGISTRY"):
        return check_host(environ["PIPELINE_REGISTRY"], "PIPELINE_REGISTRY")
    base = repository_base(environ)
    if base is not None:
        return base[0]
    return spec.registry.host


def make_plan(loaded: LoadedSpec, context: ReleaseContext, tagset: TagSet, registry: str) -> Plan:
    spec = loaded.spec
    images = tuple(
        ImagePlan(
            name=image.name,
            repository=f"{registry}/{image.repository}",
            platforms=image.platforms,
            context=str(loaded.resolve(image.context)),
            dockerfile=image.dockerfile,
            target=image.target,
            test_target=image.test_target,
            tags=tuple((t.name, t.immutable) for t in tagset.tags),
            labels=oci_labels(image, spec, context, tagset.version),
        )
        for image in spec.images
    )
    signing = (
        f"keyless ({spec.sign.keyless.issuer})"
        if spec.sign.keyless
        else f"key from ${spec.sign.key_env}"
    )
    return Plan(
        context=context,
        version=tagset.version,
        registry=registry,
        publish=tagset.publish,
        stages=STAGES if tagset.publish else PR_STAGES,
        images=images,
        warnings=tuple(tagset.warnings),
        fail_on=spec.scan.fail_on,
        ignore_unfixed=spec.scan.ignore_unfixed,
        attestations=spec.sign.attestations,
        signing=signing,
    )


def plan_lines(plan: Plan) -> list[str]:
    registry = (
        "local (the built-in loopback registry)"
        if plan.registry == LOCAL_REGISTRY
        else plan.registry
    )
    lines = [
        f"context:   {plan.context.describe()}",
        f"version:   {plan.version or '(none)'}",
        f"registry:  {registry}",
        f"stages:    {' → '.join(plan.stages)}",
    ]
    for image in plan.images:
        lines.append(f"image {image.name}: {image.repository}")
        lines.append(
            f"  build:   {', '.join(image.platforms)} from {image.context}/{image.dockerfile}"
            + (f" (target {image.target})" if image.target else "")
        )
        if image.test_target:
            lines.append(f"  tests:   stage {image.test_target} on the native platform first")
        lines.append(
            "  push:    by digest only, before any tag"
            if plan.publish
            else "  push:    nothing (pull request: build and scan only)"
        )
        lines.append(
            f"  scan:    every platform; fails on {', '.join(plan.fail_on) or 'nothing'}"
            + (", unfixed findings reported only" if plan.ignore_unfixed else "")
        )
        if plan.publish:
            lines.append(
                f"  sign:    index digest, {plan.signing}; attest {', '.join(plan.attestations)}"
            )
            for name, immutable in image.tags:
                lines.append(f"  tag:     {name} ({'immutable' if immutable else 'floating'})")
        else:
            lines.append(f"  tags:    {', '.join(n for n, _ in image.tags)} (computed, not pushed)")
    lines += [f"warning: {w}" for w in plan.warnings]
    return lines


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "context": plan.context.to_json(),
        "version": plan.version,
        "registry": plan.registry,
        "publish": plan.publish,
        "stages": list(plan.stages),
        "warnings": list(plan.warnings),
        "images": [
            {
                "name": image.name,
                "repository": image.repository,
                "platforms": list(image.platforms),
                "context": image.context,
                "dockerfile": image.dockerfile,
                "target": image.target,
                "test_target": image.test_target,
                "tags": [{"name": n, "immutable": i} for n, i in image.tags],
                "labels": dict(image.labels),
            }
            for image in plan.images
        ],
    }
