"""Put the wheels of pipeline.lock for the job image's platforms in images/runner/wheels/<arch>/.

The job image installs exactly pipeline.lock with `--no-index --require-hashes`: every file it
installs is downloaded here first (`pip download`, each checked against the lock's sha256), so
the image build itself fetches nothing from the package index. For each platform only the pins
that apply to it are downloaded (pip evaluates markers for this machine, not the target's). A
tool that is not published gets its wheel from `--find-links DIR` (the lock pins that file).

    python images/runner/prepare.py [--find-links DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from pipeline.adapters.pip import pip_command  # noqa: E402
from pipeline.emit import lock  # noqa: E402

WHEELS = Path(__file__).resolve().parent / "wheels"
# Docker architecture -> platform_machine; the image is Debian 12 (glibc 2.36).
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}
GLIBC = (2, 36)


def requirements_for(pinned: lock.Lock, machine: str) -> str:
    lines = []
    for pin in pinned.pins:
        if machine in pin.machines:
            hashes = " ".join(f"--hash=sha256:{digest}" for digest in pin.hashes)
            lines.append(f"{pin.name}=={pin.version} {hashes}")
    return "\n".join(lines) + "\n"


def download(pinned: lock.Lock, arch: str, find_links: list[Path]) -> None:
    machine = ARCHITECTURES[arch]
    folder = WHEELS / arch
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    target = lock.Target(machine, GLIBC, ())
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(requirements_for(pinned, machine))
        argv = [
            *pip_command(),
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "--python-version",
            lock.PYTHON_VERSION,
            "--implementation",
            "cp",
            "--abi",
            "cp" + lock.PYTHON_VERSION.replace(".", ""),
            "--dest",
            str(folder),
        ]
        for tag in lock.platform_tags(target):
            argv += ["--platform", tag]
        for links in find_links:
            argv += ["--find-links", str(links)]
        subprocess.run([*argv, "-r", str(requirements)], check=True)
    print(f"{arch}: {len(list(folder.glob('*.whl')))} wheels in {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--find-links", type=Path, action="append", default=[])
    args = parser.parse_args()
    pinned = lock.parse((ROOT / "pipeline.lock").read_text())
    for arch in ARCHITECTURES:
        download(pinned, arch, [p.resolve() for p in args.find_links])


if __name__ == "__main__":
    main()
