"""The same commit gives the same image, byte for byte: built twice (the second time in a fresh
clone, with BuildKit's cache emptied), the index and every platform digest are equal; and
`pipeline rebuild-check` says so of a release, and says "different" of a changed working tree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.oci import platform_digests
from tests.support.bench import Bench
from tests.support.release_repo import clone_repo, make_repo, release_tags


def test_one_commit_one_digest_and_rebuild_check(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "first", "repro/app")
    repo.tag("v1.0.0")
    first = bench.pipeline("release", cwd=repo.path)
    assert first.returncode == 0, first.stderr[-3000:]
    client = bench.client()
    digest = release_tags(client, repo.repository)["1.0.0"]
    index = client.resolve(repo.repository, digest)
    assert index is not None
    platforms = platform_digests(index.document)

    # A fresh clone, an empty BuildKit cache, another registry: the same bytes.
    clone = clone_repo(repo, tmp_path / "clone")
    clone.git("checkout", "-q", "v1.0.0")
    pruned = subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"], capture_output=True, check=False
    )
    assert pruned.returncode == 0, pruned.stderr
    env = bench.env(PIPELINE_REGISTRY=bench.plain.host, PIPELINE_REGISTRY_CA="")
    second = bench.pipeline("release", cwd=clone.path, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    plain = bench.plain.client()
    again = release_tags(plain, repo.repository)["1.0.0"]
    again_index = plain.resolve(repo.repository, again)
    assert again_index is not None
    assert platform_digests(again_index.document) == platforms
    assert again == digest, "the index too"

    ref = f"{bench.registry.host}/{repo.repository}:1.0.0"
    check = bench.pipeline("rebuild-check", ref, cwd=repo.path)
    assert check.returncode == 0, check.stderr[-3000:]
    assert f"rebuild-check: {ref} rebuilt from {repo.head[:12]} is equal" in check.stderr

    server = repo.path / "app" / "server.py"
    server.write_text(server.read_text() + "\n# one more line\n")
    changed = bench.pipeline("rebuild-check", ref, "--working-tree", cwd=repo.path)
    assert changed.returncode == 10, changed.stderr[-3000:]
    errors = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is different (linux/amd64, linux/arm64)" in errors[0], errors
    print(f"index {digest}; platforms {platforms}")
