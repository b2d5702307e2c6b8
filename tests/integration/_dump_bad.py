from __future__ import annotations
from pathlib import Path
import pytest
from tests.integration.conftest import Bench
from tests.integration.release_repo import ReleaseRepo, clone_repo
from tests.integration.test_bad_input import CASES, Case, _github, origin  # noqa: F401

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_dump(bench: Bench, origin: ReleaseRepo, tmp_path: Path, case: Case) -> None:
    repo = clone_repo(origin, tmp_path / "repo")
    if case.edit is not None:
        repo.edit_spec(*case.edit); repo.commit("x")
    if case.prepare is not None:
        case.prepare(repo)
    env = dict(case.env)
    if case.id.startswith("event-"):
        event = str(repo.path.parent / f"{repo.path.name}-event.json")
        env = {**_github(event, GITHUB_SHA=repo.head), **env}
    r = bench.pipeline(*case.args, cwd=repo.path, env=bench.env(**env), timeout=300)
    with open("/tmp/dump.txt", "a") as f:
        f.write(f"=== {case.id} rc={r.returncode} stdout_lines={len(r.stdout.splitlines())}\n{r.stderr}")
