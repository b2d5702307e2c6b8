"""The engine's pull, as the smoke test uses it, against the bench's TLS registry with a
password: both platforms at once, and a pull that fails names the registry's answer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.adapters import docker_engine
from pipeline.adapters.registry import Manifest
from pipeline.errors import EnvironmentProblem
from pipeline.oci import platform_digests
from tests.support.bench import Bench


def _auth(bench: Bench) -> dict[str, str]:
    return {"username": bench.registry.username or "", "password": bench.registry.password or ""}


def test_both_platforms_pulled_at_once_are_both_there(bench: Bench) -> None:
    repository, _, index = bench.base_image.partition("@")
    with bench.client() as client:
        manifest = client.resolve(repository.partition("/")[2], index)
    assert manifest is not None and manifest.is_index
    platforms = platform_digests(manifest.document)
    assert {"linux/amd64", "linux/arm64"} <= set(platforms)

    def one(item: tuple[str, str]) -> str:
        platform, digest = item
        ref = f"{repository}@{digest}"
        docker_engine.pull(ref, platform=platform, auth=_auth(bench))
        return str(docker_engine.client().images.get(ref).attrs["Architecture"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        architectures = list(pool.map(one, sorted(platforms.items())))
    assert architectures == [p.split("/")[1] for p in sorted(platforms)]


def test_a_failed_pull_says_what_the_registry_answered(bench: Bench) -> None:
    missing = f"{bench.registry.host}/tests/pull@sha256:{'0' * 64}"
    with pytest.raises(EnvironmentProblem) as caught:
        docker_engine.pull(missing, platform="linux/amd64", auth=_auth(bench))
    message = str(caught.value)
    assert missing in message and "linux/amd64" in message
    # The SDK's own pull said only "No such image"; the registry's answer is the daemon's error.
    assert "No such image" not in message
    assert "not found" in message or "manifest unknown" in message, message
    assert (bench.registry.password or "unset") not in message


def test_a_pull_that_fails_part_way_names_the_daemons_error(bench: Bench) -> None:
    """The manifest is there, a layer is not: the daemon reports that in the pull's stream,
    after the request succeeded, which the SDK's `images.pull` dropped ("No such image")."""
    layer, diff_id = _layer(secrets.token_bytes(4096))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        }
    ).encode()
    repository = f"tests/pull-{secrets.token_hex(4)}"
    with bench.client() as client:
        layer_digest = client.push_blob(repository, layer)
        config_digest = client.push_blob(repository, config)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        client.put_manifest(repository, digest, Manifest(digest, OCI_MANIFEST, body))
    # The layer's bytes go missing from the registry's storage (a half-replicated registry).
    hexdigest = layer_digest.removeprefix("sha256:")
    blob = bench.registry.folder / "data" / "docker/registry/v2/blobs/sha256"
    (blob / hexdigest[:2] / hexdigest / "data").unlink()

    ref = f"{bench.registry.host}/{repository}@{digest}"
    with pytest.raises(EnvironmentProblem) as caught:
        docker_engine.pull(ref, platform="linux/amd64", auth=_auth(bench))
    message = str(caught.value)
    assert ref in message and "No such image" not in message, message
    assert (bench.registry.password or "unset") not in message


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layer(content: bytes) -> tuple[bytes, str]:
    """A gzipped tar of one file, and its diff_id (the digest of the tar)."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        info = tarfile.TarInfo("payload")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    raw = tar.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()
