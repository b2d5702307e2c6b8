"""The fixture DB source: YAML in Trivy's bucket/pairs shape, converted for the bbolt writer."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import yaml

from pipeline import gate
from pipeline.sandbox import trivydb
from tests.support.bench import PLANTED, PLANTED_DB_SOURCE

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


def test_the_sandbox_db_plants_nothing_and_says_it_is_a_fixture() -> None:
    """What a user's offline release scans against: a clean app passes the default gate."""
    import yaml

    assert trivydb.PLANTED == ()
    entries = yaml.safe_load(trivydb.fixture_text())
    source = next(e for e in entries if e["bucket"] == "data-source")["pairs"][0]["value"]
    assert source["ID"] == "debian" and source["Name"].startswith(gate.FIXTURE_SOURCE_PREFIX)
    assert {e["bucket"] for e in entries} == {"data-source", "debian 12", "vulnerability"}


def test_planted_advisories_cover_the_gate_cases() -> None:
    planted = PLANTED
    entries = yaml.safe_load(PLANTED_DB_SOURCE)
    source = next(e for e in entries if e["bucket"] == "data-source")["pairs"][0]["value"]
    assert source["Name"].startswith(gate.FIXTURE_SOURCE_PREFIX)
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
