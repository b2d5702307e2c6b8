"""Shared by the native-builder tests: one small two-platform build to an OCI layout, read back
as JSON, and a build that can be watched while a fault is injected into its builder."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLATFORMS = ("linux/amd64", "linux/arm64")
EPOCH = "1700000000"
SESSION = secrets.token_hex(8)
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN uname -m > /built-on
COPY hello.txt /hello.txt
CMD ["cat", "/built-on"]
"""


@dataclass(frozen=True)
class Layout:
    """An OCI layout buildx wrote, read as JSON: index digest and per-platform documents."""

    index_digest: str
    manifests: dict[str, str]  # platform -> manifest digest
    configs: dict[str, str]  # platform -> config digest
    layers: dict[str, list[str]]  # platform -> layer digests
    build_ref: str  # buildx.build.ref: builder/node/ref

    @classmethod
    def read(cls, folder: Path, metadata: Path) -> Layout:
        def blob(digest: str) -> dict[str, Any]:
            data: dict[str, Any] = json.loads(
                (folder / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text()
            )
            return data

        top = json.loads((folder / "index.json").read_text())["manifests"]
        assert len(top) == 1, top
        index = blob(top[0]["digest"])
        manifests, configs, layers = {}, {}, {}
        for entry in index["manifests"]:
            platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            manifest = blob(entry["digest"])
            manifests[platform] = entry["digest"]
            configs[platform] = manifest["config"]["digest"]
            layers[platform] = [layer["digest"] for layer in manifest["layers"]]
        meta = json.loads(metadata.read_text())
        assert meta["containerimage.digest"] == top[0]["digest"]
        return cls(top[0]["digest"], manifests, configs, layers, meta["buildx.build.ref"])


def build_context(folder: Path) -> Path:
    """The build context. hello.txt is new to every session (a cached COPY layer of another
    session's file would carry that file's mtime) and its mtime is fixed at EPOCH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    hello = folder / "hello.txt"
    hello.write_text(f"hello from the build context {SESSION}\n")
    os.utime(hello, (int(EPOCH), int(EPOCH)))
    return folder


def oci_build_argv(
    base: str, dest: Path, *, rewrite: bool, platforms: tuple[str, ...]
) -> list[str]:
    output = f"type=oci,dest={dest},tar=false" + (",rewrite-timestamp=true" if rewrite else "")
    return [
        "buildx",
        "build",
        "--platform",
        ",".join(platforms),
        "--build-arg",
        f"BASE={base}",
        "--provenance=false",
        "--output",
        output,
        "--metadata-file",
        f"{dest}.json",
        ".",
    ]


def docker(
    argv: list[str], env: Mapping[str, str], cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *argv],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class BuildWatch:
    """A build of a step that sleeps (`RUN sleep 1193`), its output collected as it comes."""

    def __init__(
        self, selector: list[str], base: str, env: Mapping[str, str], folder: Path
    ) -> None:
        """`selector`: what picks the builder (`--context NAME` before `buildx`, or
        `--builder NAME` after `build`)."""
        folder.mkdir()
        (folder / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN sleep 1193\n")
        self.lines: list[str] = []
        self.running = threading.Event()
        before, after = (selector, []) if selector[0] == "--context" else ([], selector)
        self.proc = subprocess.Popen(
            [
                "docker",
                *before,
                "buildx",
                "build",
                *after,
                "--progress",
                "plain",
                "--platform",
                "linux/amd64",
                "--build-arg",
                f"BASE={base}",
                "--output",
                "type=cacheonly",
                ".",
            ],
            env=dict(env),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "RUN sleep 1193" in line:
                self.running.set()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith("ERROR:")]
