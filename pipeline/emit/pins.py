"""Every action the generated GitHub workflow uses, pinned to a full commit SHA.

Each SHA was read from the action's own repository (`git rev-parse refs/tags/<version>^{commit}`
on a fetched copy), never guessed; the version is written next to it as a comment so a reviewer
and Dependabot see what it is. Bump a pin by reading the new tag's commit the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    action: str  # owner/repo[/path]
    sha: str  # 40 hex: the commit the version tag points at
    version: str

    @property
    def uses(self) -> str:
        return f"{self.action}@{self.sha}"


CHECKOUT = Pin("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1")
SETUP_PYTHON = Pin("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0")
SETUP_QEMU = Pin("docker/setup-qemu-action", "96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0")
SETUP_BUILDX = Pin(
    "docker/setup-buildx-action", "37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"
)
LOGIN = Pin("docker/login-action", "4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0")
COSIGN_INSTALLER = Pin(
    "sigstore/cosign-installer", "6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"
)
UPLOAD_SARIF = Pin(
    "github/codeql-action/upload-sarif", "8aad20d150bbac5944a9f9d289da16a4b0d87c1e", "v4.36.2"
)
UPLOAD_ARTIFACT = Pin(
    "actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"
)
DOWNLOAD_ARTIFACT = Pin(
    "actions/download-artifact", "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"
)
ATTEST_BUILD_PROVENANCE = Pin(
    "actions/attest-build-provenance", "a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32", "v4.1.0"
)

ALL = (
    CHECKOUT,
    SETUP_PYTHON,
    SETUP_QEMU,
    SETUP_BUILDX,
    LOGIN,
    COSIGN_INSTALLER,
    UPLOAD_SARIF,
    UPLOAD_ARTIFACT,
    DOWNLOAD_ARTIFACT,
    ATTEST_BUILD_PROVENANCE,
)
