"""A throw-away git repository holding a copy of sample-app, for black-box release tests.

Each test gets its own repository name in the bench registry, so tests never see each other's
tags. The spec is sample-app's own, with the repository path changed and the bench's accepted
risks added (`.trivyignore.yaml`: two of the planted advisories, so a release shows the gate with
accepted risks; the bench's releases scan against the planted DB).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.adapters.registry import RegistryClient

ROOT = Path(__file__).resolve().parents[2]
# The OCI 1.1 referrers fallback tag `cosign copy` writes beside .sig and .att.
COSIGN_REFERRER_TAG = re.compile(r"sha256-[0-9a-f]{64}")
SAMPLE = ROOT / "sample-app"
COPY = ("app", "tests", "Dockerfile", ".dockerignore", "release.py")
IGNORE_FILE = Path(__file__).resolve().parent / "data" / "trivyignore-planted.yaml"
SCAN_WITHOUT_IGNORES = "    scan=ScanPolicy(\n        fail_on="
SCAN_WITH_IGNORES = (
    '    scan=ScanPolicy(\n        ignore_file=".trivyignore.yaml",\n        fail_on='
)


@dataclass
class ReleaseRepo:
    path: Path
    repository: str  # path in the registry, e.g. tests/full
    spec: str = "release.py"  # relative to path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, *, force: bool = False) -> None:
        self.git("tag", *(["-f"] if force else []), name)

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "dist" / "release.json").read_text())
        return data

    def edit_spec(self, old: str, new: str) -> None:
        spec = self.path / self.spec
        text = spec.read_text()
        assert old in text, f"{old!r} not in the spec"
        spec.write_text(text.replace(old, new))


def make_repo(folder: Path, repository: str) -> ReleaseRepo:
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        source = SAMPLE / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    (folder / ".gitignore").write_text("dist/\n__pycache__/\n")
    shutil.copy2(IGNORE_FILE, folder / ".trivyignore.yaml")
    repo = ReleaseRepo(folder, repository)
    repo.edit_spec('repository="acme/sample-app"', f'repository="{repository}"')
    repo.edit_spec(SCAN_WITHOUT_IGNORES, SCAN_WITH_IGNORES)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "tests@example.invalid")
    repo.git("config", "user.name", "tests")
    repo.commit("sample-app")
    return repo


def clone_project(folder: Path, repository: str) -> ReleaseRepo:
    """A clone of this whole project (noxfile, package, sample-app): what generated CI jobs run in.

    The spec's repository path is changed and committed, so the clone has its own commit. It has
    no ignore file: release it against the sandbox's DB (`bench.sandbox_db`)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    repo = ReleaseRepo(folder, repository, spec="sample-app/release.py")
    repo.git("config", "user.email", "tests@example.invalid")
    repo.git("config", "user.name", "tests")
    repo.git("checkout", "-q", "-B", "main")
    repo.edit_spec('repository="acme/sample-app"', f'repository="{repository}"')
    repo.commit(f"release {repository}")
    return repo


def clone_repo(source: ReleaseRepo, folder: Path) -> ReleaseRepo:
    """A second checkout of a release repository (same registry repository)."""
    subprocess.run(["git", "clone", "-q", str(source.path), str(folder)], check=True)
    clone = ReleaseRepo(folder, source.repository)
    clone.git("config", "user.email", "tests@example.invalid")
    clone.git("config", "user.name", "tests")
    return clone


def release_tags(client: RegistryClient, repository: str) -> dict[str, str]:
    """tag -> digest for the release tags of `repository`, read through the registry API
    (cosign's .sig/.att tags and the build cache left out)."""
    return {
        tag: client.digest_of(repository, tag) or ""
        for tag in client.tags(repository)
        if not tag.endswith((".sig", ".att"))
        and tag != "buildcache"
        and not COSIGN_REFERRER_TAG.fullmatch(tag)
    }
