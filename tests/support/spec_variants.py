"""Spec variants the emitters must handle, shared by the emitter unit tests and the linters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.spec import CIOptions, KeylessIdentity, Registry, SignPolicy, Spec

# Keyless signing (Sigstore OIDC) to a public registry.
KEYLESS_GHCR: dict[str, Any] = {
    "registry": Registry(host="ghcr.io"),
    "sign": SignPolicy(
        keyless=KeylessIdentity(
            issuer="https://token.actions.githubusercontent.com",
            subject_regexp="^https://github.com/acme/",
        ),
        transparency_log=True,
    ),
}
# One native runner per platform (fan-out builds, then a merge job).
NATIVE: dict[str, Any] = {
    "ci": CIOptions(
        github_runners={"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"},
        gitlab_runner_tags={"linux/amd64": ("amd64",), "linux/arm64": ("arm64",)},
    )
}


def variants(base: Spec) -> dict[str, Spec]:
    """Every variant of `base` the emitters must handle, by name."""
    return {
        "default": base,
        "keyless-ghcr": replace(base, **KEYLESS_GHCR),
        "native-runners": replace(base, **NATIVE),
    }
