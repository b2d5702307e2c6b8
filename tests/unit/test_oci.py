from __future__ import annotations

import json
from pathlib import Path

from pipeline.oci import Layout, digest_of, merge_indexes, platform_digests

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
