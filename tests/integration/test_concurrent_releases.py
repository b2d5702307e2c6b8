"""Two processes release the same version at the same time, from two clones.

Different content under one version: one wins, the other is refused (exit 9) and writes no tag;
every tag names the winner's digest, which verifies. The same commit twice: both succeed or one
becomes a no-op; never two digests under one immutable tag. Checked through the registry API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.bench import Bench
from tests.support.release_repo import ReleaseRepo, clone_repo, make_repo, release_tags

PUBLISH_REFUSED = 9


def _race(bench: Bench, *repos: ReleaseRepo) -> list[subprocess.CompletedProcess[str]]:
    """Start every release before waiting for any."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "release"],
            cwd=repo.path,
            env=bench.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for repo in repos
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1200)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_different_content_under_one_version_one_wins_the_other_is_refused(
    bench: Bench, tmp_path: Path
) -> None:
    origin = make_repo(tmp_path / "origin", "race/different")
    left, right = clone_repo(origin, tmp_path / "left"), clone_repo(origin, tmp_path / "right")
    for side in (left, right):
        (side.path / "app" / "BUILT_BY.txt").write_text(side.path.name + "\n")
        side.commit(f"built by {side.path.name}")
        side.tag("v3.0.0")
    results = _race(bench, left, right)
    codes = sorted(r.returncode for r in results)
    detail = "\n---\n".join(r.stderr[-2500:] for r in results)
    assert codes == [0, PUBLISH_REFUSED], detail
    winner, loser = (left, right) if results[0].returncode == 0 else (right, left)
    refused = results[1] if results[0].returncode == 0 else results[0]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3.0.0" in errors[0], refused.stderr[-2500:]

    client = bench.client()
    tags = release_tags(client, origin.repository)
    assert set(tags) == {"3.0.0", "3.0", "3", "latest", f"sha-{winner.head[:7]}"}, tags
    assert len(set(tags.values())) == 1, f"two digests under one release: {tags}"
    assert f"sha-{loser.head[:7]}" not in tags
    verify = bench.pipeline(
        "verify", f"{bench.registry.host}/{origin.repository}:3.0.0", cwd=winner.path
    )
    assert verify.returncode == 0, verify.stderr[-2500:]
    assert f"commit {winner.head[:12]}" in verify.stdout + verify.stderr


def test_the_same_commit_twice_gives_one_digest(bench: Bench, tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin", "race/same")
    origin.tag("v4.0.0")
    left, right = clone_repo(origin, tmp_path / "left"), clone_repo(origin, tmp_path / "right")
    for side in (left, right):
        shutil.rmtree(side.path / "dist", ignore_errors=True)
    results = _race(bench, left, right)
    codes = [r.returncode for r in results]
    detail = "\n---\n".join(r.stderr[-2500:] for r in results)
    assert 0 in codes and set(codes) <= {0, PUBLISH_REFUSED}, detail
    tags = release_tags(bench.client(), origin.repository)
    assert set(tags) == {"4.0.0", "4.0", "4", "latest", f"sha-{origin.head[:7]}"}, tags
    assert len(set(tags.values())) == 1, f"two digests under one release: {tags}"
