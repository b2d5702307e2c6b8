"""Spec variants the emitters must handle, shared by the emitter unit tests and the linters:
QEMU (the default), native runners, keyless, GHCR, two images, the job image as GitHub's job
container with provenance attestations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.spec import CIOptions, Image, KeylessIdentity, Registry, SignPolicy, Spec

# A job image and a docker-in-docker image by digest (the digests stand for released ones).
JOB_IMAGE = "registry.example.com/pipeline/runner@sha256:" + "1" * 64
GHCR_JOB_IMAGE = "ghcr.io/acme/pipeline-runner@sha256:" + "3" * 64
DIND_IMAGE = "registry.example.com/pipeline/dind@sha256:" + "2" * 64

KEYLESS = SignPolicy(
    keyless=KeylessIdentity(
        issuer="https://token.actions.githubusercontent.com",
        subject_regexp="^https://github.com/acme/",
    ),
    transparency_log=True,
)
# Keyless signing (Sigstore OIDC) to a public registry.
KEYLESS_GHCR: dict[str, Any] = {"registry": Registry(host="ghcr.io"), "sign": KEYLESS}
# One native runner per platform (fan-out builds, then a merge job).
NATIVE: dict[str, Any] = {
    "ci": CIOptions(
        github_runners={"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"},
        gitlab_runner_tags={"linux/amd64": ("amd64",), "linux/arm64": ("arm64",)},
    )
}
JOB_CONTAINER: dict[str, Any] = {
    "ci": CIOptions(
        job_image=JOB_IMAGE,
        gitlab_dind_image=DIND_IMAGE,
        github_job_container=True,
        attest_provenance=True,
    )
}


def two_images(base: Spec) -> Spec:
    """`base` with a second image (a worker built from the same Dockerfile, amd64 only)."""
    first = base.images[0]
    worker = replace(
        first, name="worker", repository=f"{first.repository}-worker", platforms=("linux/amd64",)
    )
    return replace(base, images=(first, worker))


def variants(base: Spec) -> dict[str, Spec]:
    """Every variant of `base` the emitters must handle, by name."""
    return {
        "default": base,
        "keyless": replace(base, sign=KEYLESS),
        "ghcr": replace(base, registry=Registry(host="ghcr.io")),
        "keyless-ghcr": replace(base, **KEYLESS_GHCR),
        "native-runners": replace(base, **NATIVE),
        "two-images": two_images(base),
        "job-container": replace(base, **JOB_CONTAINER),
        # A registry behind a private CA, which the builder's BuildKit must be given.
        "private-ca": replace(
            base, registry=Registry(host="registry.example.com", ca_file="certs/registry-ca.pem")
        ),
        # Private by default on GHCR: the runner needs the job's token to pull the job image.
        "job-container-ghcr": replace(
            base,
            registry=Registry(host="ghcr.io"),
            ci=replace(JOB_CONTAINER["ci"], job_image=GHCR_JOB_IMAGE),
        ),
    }


__all__ = [
    "DIND_IMAGE",
    "GHCR_JOB_IMAGE",
    "JOB_IMAGE",
    "KEYLESS_GHCR",
    "NATIVE",
    "Image",
    "variants",
]
