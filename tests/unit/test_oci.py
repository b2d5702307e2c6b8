from __future__ import annotations

import json
from pathlib import Path

from pipeline.oci import OCI_INDEX, Layout, digest_of, merge_indexes, platform_digests

AMD = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "a" * 64,
    "size": 1,
    "platform": {"architecture": "amd64", "os": "linux"},
}
ARM = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "b" * 64,
    "size": 1,
    "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
}
ATT = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "c" * 64,
    "size": 1,
    "platform": {"architecture": "unknown", "os": "unknown"},
    "annotations": {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": "sha256:" + "a" * 64,
    },
}


def test_platform_digests_skip_attestations() -> None:
    index = {"manifests": [AMD, ATT, ARM]}
    assert platform_digests(index) == {
        "linux/amd64": "sha256:" + "a" * 64,
        "linux/arm/v7": "sha256:" + "b" * 64,
    }


def test_merge_is_deterministic_and_complete() -> None:
    one = merge_indexes([{"manifests": [ATT, AMD]}, {"manifests": [ARM]}], {"k": "v"})
    two = merge_indexes([{"manifests": [ARM]}, {"manifests": [AMD, ATT]}], {"k": "v"})
    assert one == two
    doc = json.loads(one)
    assert [m["digest"][7] for m in doc["manifests"]] == ["a", "b", "c"]
    assert doc["annotations"] == {"k": "v"}
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"


def test_layout_walk_children_first(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(body: bytes) -> str:
        digest = digest_of(body)
        (blobs / digest.split(":")[1]).write_bytes(body)
        return digest

    config = put(b"{}")
    layer = put(b"layer")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": "c", "digest": config, "size": 2},
            "layers": [{"mediaType": "l", "digest": layer, "size": 5}],
        }
    ).encode()
    mdigest = put(manifest)
    index = json.dumps({"manifests": [{**AMD, "digest": mdigest, "size": len(manifest)}]}).encode()
    idigest = put(index)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": idigest,
                        "size": len(index),
                    }
                ]
            }
        )
    )
    layout = Layout(tmp_path)
    walked = [d.digest for d, _ in layout.walk()]
    assert walked == [mdigest, idigest]
    assert [b.digest for b in layout.blobs_of(manifest)] == [config, layer]


def test_a_single_platform_layout_gets_a_one_entry_index(tmp_path: Path) -> None:
    manifest = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    digest = digest_of(manifest)
    layout = Layout(tmp_path)
    layout.blob_path(digest).parent.mkdir(parents=True)
    layout.blob_path(digest).write_bytes(manifest)
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    index_digest = layout.ensure_index(digest, {"org.opencontainers.image.version": "1.0.0"})
    index = json.loads(layout.blob(index_digest))
    assert platform_digests(index) == {"linux/amd64": digest}
    assert index["annotations"] == {"org.opencontainers.image.version": "1.0.0"}
    assert layout.top().digest == index_digest and layout.top().media_type == OCI_INDEX
    assert [d.digest for d, _ in layout.walk()] == [digest, index_digest]
    assert layout.ensure_index(index_digest, {}) == index_digest, "an index is left as it is"
