"""The fixture DB source: YAML in Trivy's bucket/pairs shape, converted for the bbolt writer."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from pipeline.sandbox import trivydb

SOURCE = """
- bucket: data-source
  pairs:
    - key: debian 12
      value: {ID: debian}
- bucket: debian 12
  pairs:
    - bucket: bash
      pairs:
        - key: CVE-1
          value: {FixedVersion: "2.0", Status: 3}
- bucket: vulnerability
  pairs:
    - key: CVE-1
      value: {Severity: CRITICAL, VendorSeverity: {debian: 4}}
"""


def test_conversion_keeps_nesting_and_values() -> None:
    import yaml

    description = trivydb.to_description(yaml.safe_load(SOURCE))
    assert description == {
        "buckets": [
            {
                "name": "data-source",
                "pairs": [{"key": "debian 12", "value": {"ID": "debian"}}],
                "buckets": [],
            },
            {
                "name": "debian 12",
                "pairs": [],
                "buckets": [
                    {
                        "name": "bash",
                        "pairs": [{"key": "CVE-1", "value": {"FixedVersion": "2.0", "Status": 3}}],
                        "buckets": [],
                    }
                ],
            },
            {
                "name": "vulnerability",
                "pairs": [
                    {
                        "key": "CVE-1",
                        "value": {"Severity": "CRITICAL", "VendorSeverity": {"debian": 4}},
                    }
                ],
                "buckets": [],
            },
        ]
    }


def test_planted_advisories_cover_the_gate_cases() -> None:
    planted = trivydb.PLANTED
    kinds = {(p.severity, p.fixed_version is not None) for p in planted}
    assert {("CRITICAL", True), ("HIGH", True), ("HIGH", False), ("LOW", True)} <= kinds
    assert all(p.id.startswith("CVE-2099-") for p in planted)
    assert trivydb.planted(SOURCE)[0] == trivydb.Planted("CVE-1", "bash", "CRITICAL", "2.0")


def test_archive_is_reproducible() -> None:
    one = trivydb._tar_gz({"b": b"2", "a": b"1"})
    two = trivydb._tar_gz({"a": b"1", "b": b"2"})
    assert one == two
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(one))) as tar:
        assert tar.getnames() == ["a", "b"]


def test_artifact_manifest_is_what_trivy_expects() -> None:
    body = json.loads(trivydb.artifact_manifest(b"layer", b"{}"))
    (layer,) = body["layers"]
    assert layer["mediaType"] == "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
    assert layer["annotations"] == {"org.opencontainers.image.title": "db.tar.gz"}
    assert body["config"]["mediaType"] == "application/vnd.aquasec.trivy.config.v1+json"
