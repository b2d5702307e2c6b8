"""The Docker Hub stand-ins' pure parts: which FROM names they serve, daemon.json edits, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.sandbox import baseimage, hubmirror


@pytest.mark.parametrize(
    ("reference", "tag"),
    [
        ("debian:bookworm-slim", "bookworm-slim"),
        ("debian:bookworm", "bookworm"),
        ("docker.io/library/debian:bookworm", "bookworm"),
        ("library/debian:bookworm-slim", "bookworm-slim"),
        ("index.docker.io/library/debian:bookworm-slim", "bookworm-slim"),
        ("debian:trixie", None),  # not made here
        ("debian", None),  # latest: not made here
        ("debian:bookworm@sha256:" + "0" * 64, None),  # Docker Hub's own digest
        ("python:3.12-slim-bookworm", None),
        ("ghcr.io/acme/debian:bookworm", None),
    ],
)
def test_which_names_are_served(reference: str, tag: str | None) -> None:
    assert hubmirror.hub_tag(reference) == tag


def test_tags_of_a_build() -> None:
    bases = [
        "debian:bookworm-slim",
        "base",
        "debian:bookworm-slim",
        "docker.io/library/debian:bookworm",
    ]
    assert hubmirror.hub_tags(bases) == ("bookworm", "bookworm-slim")


def test_daemon_json_keeps_other_keys_and_empties_to_a_list(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"features": {"containerd-snapshotter": True}}))
    url = "http://127.0.0.1:5999"
    assert hubmirror.set_mirror(url, present=True, daemon_json=daemon)
    assert not hubmirror.set_mirror(url + "/", present=True, daemon_json=daemon)  # idempotent
    config = json.loads(daemon.read_text())
    assert config == {"features": {"containerd-snapshotter": True}, "registry-mirrors": [url]}
    assert hubmirror.set_mirror(url, present=False, daemon_json=daemon)
    # An absent key is left as it was by a reload: the emptied list is written out.
    assert json.loads(daemon.read_text())["registry-mirrors"] == []
    assert not hubmirror.set_mirror(url, present=False, daemon_json=daemon)


def test_a_new_mirror_goes_first(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"registry-mirrors": ["https://mirror.example"]}))
    hubmirror.set_mirror("http://127.0.0.1:1", present=True, daemon_json=daemon)
    assert json.loads(daemon.read_text())["registry-mirrors"] == [
        "http://127.0.0.1:1",
        "https://mirror.example",
    ]


def test_recipes() -> None:
    slim = baseimage.rootfs_argv(
        "arm64",
        Path("/out.tar"),
        (),
        dpkg_options=hubmirror.TAGS["bookworm-slim"],
        apt_options=hubmirror.APT_OPTIONS,
    )
    assert slim[:4] == ["mmdebstrap", "--variant=minbase", "--architectures=arm64", "--quiet"]
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in slim
    assert '--aptopt=Acquire::Languages "none"' in slim
    assert slim[-2:] == ["bookworm", "/out.tar"]
    # The built-in base's recipe (and so its cache key) is unchanged.
    assert baseimage.rootfs_argv("amd64", Path("/b.tar"))[3] == "--include=python3"
    full = baseimage.cache_key("amd64", (), dpkg_options=(), apt_options=hubmirror.APT_OPTIONS)
    assert full != baseimage.cache_key("amd64")
