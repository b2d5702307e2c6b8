"""`pipeline rescan` turns a release red when its DB learns a new advisory, for real.

A release passes the gate against a DB with the bench's planted advisories (the CRITICAL and
HIGH ones accepted by the test repository's ignore file). Then the same DB repository is
published again with one more advisory, CVE-2099-0005 (CRITICAL, fixed upstream), planted on
ncurses, a source package of the built-in base image: the mirror updated in place, as a real
mirror of aquasec/trivy-db does. `rescan` must fetch the new DB although the cached one is not
due (the fixture's NextUpdate is 2099), find the advisory on both platforms, call it new since the
release, attest the result and exit 8; `verify` then refuses the release by that advisory.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.adapters.runner import Runner
from pipeline.sandbox.trivydb import ensure_published
from tests.support.bench import PLANTED_DB_SOURCE, Bench
from tests.support.release_repo import make_repo

NEW_ID = "CVE-2099-0005"
NEW_BUCKET = """\
    - bucket: ncurses
      pairs:
        - key: CVE-2099-0005
          value: {FixedVersion: 6.4-99, Status: 3}
"""
NEW_ADVISORY = """\
    - key: CVE-2099-0005
      value:
        Title: "ncurses: fixture advisory (CRITICAL, fixed) published after the release"
        Description: Not a real vulnerability. Planted so a rescan has something new to find.
        Severity: CRITICAL
        VendorSeverity: {debian: 4}
"""


def with_new_advisory(source: str) -> str:
    """The planted DB's YAML with CVE-2099-0005 on ncurses (bucket and vulnerability entries)."""
    debian = "- bucket: debian 12\n  pairs:\n"
    vulnerabilities = "- bucket: vulnerability\n  pairs:\n"
    assert debian in source and vulnerabilities in source
    return source.replace(debian, debian + NEW_BUCKET).replace(
        vulnerabilities, vulnerabilities + NEW_ADVISORY
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_rescan_turns_a_release_red_when_the_db_learns_a_new_advisory(
    bench: Bench, tmp_path: Path
) -> None:
    tools = Runner(echo=False).with_env(**bench.tool_env())
    repository = "bench/rescan-mirror/trivy-db"  # a mirror of this test's own
    ensure_published(bench.registry, repository, tools, text=PLANTED_DB_SOURCE)
    env = bench.env(PIPELINE_TRIVY_DB_REPOSITORY=f"{bench.registry.host}/{repository}")
    repo = make_repo(tmp_path / "repo", "rescan/app")
    repo.tag("v1.0.0")
    released = bench.pipeline("release", cwd=repo.path, env=env)
    assert released.returncode == 0, released.stderr[-3000:]
    ref = f"{bench.registry.host}/{repo.repository}:1.0.0"

    same = bench.pipeline("rescan", cwd=repo.path, env=env)
    assert same.returncode == 0, same.stderr[-3000:]
    assert "1 release(s) still meet the policy" in same.stderr
    assert NEW_ID not in same.stdout + same.stderr

    ensure_published(bench.registry, repository, tools, text=with_new_advisory(PLANTED_DB_SOURCE))
    red = bench.pipeline("rescan", cwd=repo.path, env=env)
    assert red.returncode == 8, red.stderr[-3000:]
    (line,) = _errors(red.stderr)
    # Trivy names the binary packages built from ncurses (libtinfo6, libncursesw6, ...)
    assert re.search(
        rf"{re.escape(ref)} linux/\w+: CRITICAL {NEW_ID} in \S+ \(new since release\)", line
    ), line
    assert "verify and promotion now refuse it" in line
    rows = [row for row in red.stderr.splitlines() if "FAIL" in row]  # the table is on stderr
    assert len(rows) == 2, red.stderr  # amd64 and arm64, each its own scan
    assert all(
        re.search(rf"CRITICAL {NEW_ID} \((libtinfo6|libncursesw6|ncurses-\w+)\)", row)
        for row in rows
    ), red.stderr
    # the accepted advisories of the release are not "new"
    assert not re.search(r"CVE-2099-000[1-4]", "".join(rows)), red.stderr

    verified = bench.pipeline("verify", ref, cwd=repo.path, env=env)
    assert verified.returncode == 10, verified.stderr[-3000:]
    (line,) = _errors(verified.stderr)
    assert NEW_ID in line, line
