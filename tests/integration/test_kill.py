"""SIGKILL at the worst moments of a release, while a poller watches the registry.

Each round starts a release (the signing key given as PEM text, as CI secret stores hold it) and
kills its whole process group at one point: mid-push (right after the build, while blobs go
up), mid-sign (cosign running) and between tag writes (as soon as the first release tag
appears). Then:
- no key copy is anywhere under the run's TMPDIR, the repository or the cache;
- `dist/release.json` says the run did not finish, and `dist/state.json` is whole or absent;
- a re-run completes, converges on the killed run's digest, and removes the killed run's
  scratch folder;
- at no moment did a release tag point at a digest without a signature and attestations: a
  thread polls every tag of the repository through the registry API during the whole round.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.adapters.cosign import signature_tag
from pipeline.adapters.registry import RegistryClient
from pipeline.paths import cache_dir
from tests.support.bench import Bench
from tests.support.faultproxy import Fault, FaultProxy, tag_put
from tests.support.release_repo import ReleaseRepo, make_repo, release_tags


@dataclass
class Poller:
    """Watches `repository`'s tags: every release tag must name a signed, attested digest."""

    client: RegistryClient
    repository: str
    observations: int = 0
    violations: list[str] = field(default_factory=list)
    first_tag: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for tag, digest in release_tags(self.client, self.repository).items():
                self.first_tag.set()
                self.observations += 1
                if not digest:
                    continue  # deleted between the listing and the read
                for suffix in ("sig", "att"):
                    if self.client.resolve(self.repository, signature_tag(digest, suffix)) is None:
                        self.violations.append(f"{tag} -> {digest} has no .{suffix}")
            time.sleep(0.02)


def _key_body(bench: Bench) -> str:
    """A line from the middle of the private key's PEM: what a copy of it would contain."""
    lines = bench.cosign_key.read_text().strip().splitlines()
    return lines[len(lines) // 2]


def _copies(body: str, *folders: Path) -> list[Path]:
    """Files under `folders` holding `body` (files over 4 MiB, the cached root filesystems and
    image layers, are left out: a key copy is a small file)."""
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 4 << 20:
                try:
                    if body in path.read_text(errors="ignore"):
                        found.append(path)
                except OSError:
                    continue
    return found


def _env(bench: Bench, tmpdir: Path, **extra: str) -> dict[str, str]:
    return bench.env(
        COSIGN_KEY=bench.cosign_key.read_text(),
        COSIGN_PUBLIC_KEY=bench.cosign_pub.read_text(),
        TMPDIR=str(tmpdir),
        **extra,
    )


def _start(repo: ReleaseRepo, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The release, its output into `log` (a file, never a pipe that could fill and block it)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "release"],
            cwd=repo.path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )


def _wait_for(process: subprocess.Popen[bytes], log: Path, marker: str) -> None:
    """Until a line of `log` contains `marker` (a progress line: starting with the tick)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line and (marker != "buildx build" or line.startswith("✓")):
                return
        if process.poll() is not None:
            pytest.fail(f"the release ended before {marker!r}: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"no {marker!r} within 600 s")


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


KILL_POINTS = {
    # the build has finished (its progress line), the push by digest has just begun
    "mid-push": ("buildx build", 0.3),
    # cosign is signing and attesting
    "mid-sign": ("+ cosign attest", 0.5),
    # a release tag exists, the others are being written (each tag write is held 2 s by the
    # fault proxy, so the kill lands between two of them)
    "between tag writes": (None, 0.0),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_killed_release_leaves_no_key_no_unsigned_tag_and_reruns(
    bench: Bench, proxy: FaultProxy, tmp_path: Path, point: str
) -> None:
    marker, delay = KILL_POINTS[point]
    repo = make_repo(tmp_path / "repo", f"kill/{point.replace(' ', '-')}")
    repo.tag("v1.0.0")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    extra = {}
    if marker is None:
        proxy.schedule.faults.append(Fault("slow", tag_put, persistent=True))
        extra["PIPELINE_REGISTRY"] = proxy.host
    env = _env(bench, tmpdir, **extra)
    poller = Poller(bench.client(), repo.repository).start()
    log = tmp_path / "killed.log"
    process = _start(repo, env, log)
    try:
        if marker is None:
            assert poller.first_tag.wait(timeout=600), "no tag was ever written"
        else:
            _wait_for(process, log, marker)
        time.sleep(delay)
        _kill(process)
        killed_report = json.loads((repo.path / "dist" / "release.json").read_text())
        assert killed_report["status"] == "running", "a killed run says it did not finish"
        state = repo.path / "dist" / "state.json"
        if state.exists():
            json.loads(state.read_text())  # whole: written atomically
        leftovers = sorted(tmpdir.glob("pipeline-run-*"))
        assert _copies(_key_body(bench), tmpdir, repo.path, cache_dir()) == []
        metadata = repo.path / "dist" / "oci" / "sample-app.metadata.json"
        killed_digest = (
            json.loads(metadata.read_text()).get("containerimage.digest")
            if metadata.exists()
            else None
        )

        proxy.schedule.faults.clear()
        rerun = subprocess.run(
            [sys.executable, "-m", "pipeline", "release"],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr[-4000:]
    finally:
        if process.poll() is None:
            _kill(process)
        poller.stop()
    assert poller.violations == [], poller.violations[:5]
    assert poller.observations > 0
    report = repo.report()
    assert report["status"] == "pass"
    digest = report["images"][0]["index_digest"]
    if killed_digest is not None:
        assert digest == killed_digest, "the re-run converges on the killed run's digest"
    assert len(set(release_tags(bench.client(), repo.repository).values())) == 1
    for folder in leftovers:
        assert not folder.exists(), f"{folder.name}: the killed run's scratch folder remains"
    assert _copies(_key_body(bench), tmpdir, repo.path) == []
    print(f"{point}: {poller.observations} tag observations, 0 unsigned")
