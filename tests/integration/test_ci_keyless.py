"""The generated CI jobs sign keylessly, with the OIDC token supplied the way each service does.

- GitHub: the workflow of a keyless spec, executed by the replay harness
  (tests/support/github_replay.py). A job granted `id-token: write` gets the runtime's two
  variables, `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, and nothing
  else; cosign exchanges them for a token at our OIDC issuer, Fulcio (the Sigstore bench)
  certifies it. The release then verifies by the workflow's identity, from outside the tool.
- GitLab: the pipeline of a keyless spec under gitlab-ci-local (shell executor, as in
  test_gitlab_pipeline.py). GitLab puts an `id_tokens` token in a variable of that name, in the
  jobs that declare it; gitlab-ci-local does not mint them, so the token (GitLab-shaped, for this
  project and tag) is given as that variable, and the test checks that only the sign job
  declares it.

Both without any key: no COSIGN_* secret or variable exists in these runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support.bench import Bench
from tests.support.ci_env import GITHUB_REPOSITORY
from tests.support.github_replay import Event, prepare
from tests.support.gitlab_local import job_python, run_pipeline, tag_pipeline_variables
from tests.support.oidc import GITLAB_HOST, Kind
from tests.support.release_repo import ReleaseRepo, clone_project, release_tags
from tests.support.sigstore import SigstoreBench

GITHUB_WORKFLOW = ".github/workflows/release.yml"
SAMPLE_SIGN = 'sign=SignPolicy(attestations=("cyclonedx", "vuln", "provenance")),'


def keyless_clone(
    folder: Path,
    repository: str,
    ci: str,
    project: str,
    workflow: str,
    *,
    server: str | None = None,
) -> ReleaseRepo:
    """A clone of this project whose spec signs keylessly as the `ci` workload `project`."""
    repo = clone_project(folder, repository)
    repo.edit_spec(
        SAMPLE_SIGN,
        f"""sign=SignPolicy(
        attestations=("cyclonedx", "vuln", "provenance"),
        keyless=KeylessIdentity(
            issuer=os.environ["BENCH_OIDC_ISSUER"],
            ci="{ci}",{f"{chr(10)}            server={server!r}," if server else ""}
            repository="{project}",
            workflow="{workflow}",
        ),
        certificate_transparency=False,  # the bench's Fulcio has no CT log
    ),""",
    )
    repo.edit_spec("from pipeline.spec import (", "import os\n\nfrom pipeline.spec import (")
    repo.edit_spec("    Image,\n", "    Image,\n    KeylessIdentity,\n")
    repo.commit("sign keylessly")
    return repo


def sigstore_env(sigstore: SigstoreBench, kind: Kind) -> dict[str, str]:
    """What a runner of the service needs for the bench's Sigstore: its Fulcio, Fulcio's root,
    and the issuer the spec names (the spec reads it from the environment)."""
    return {
        **sigstore.env(),
        "BENCH_OIDC_ISSUER": sigstore.issuer_url(kind),
        "PIPELINE_FULCIO_URL": sigstore.fulcio_url,
    }


def cosign_verify(
    bench: Bench, sigstore: SigstoreBench, ref: str, identity: str, kind: Kind
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["cosign", "verify", *sigstore.verify_flags(identity, kind), ref],
        env=sigstore.cosign_env(bench.env()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_github_workflow_signs_keylessly_with_the_runtime_token(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path
) -> None:
    repo = keyless_clone(
        tmp_path / "project", "tests/github-keyless", "github", GITHUB_REPOSITORY, GITHUB_WORKFLOW
    )
    runner, workflow = prepare(bench, tmp_path, repo, sigstore_env(sigstore, "github"))
    assert not any("COSIGN" in str(job) for job in workflow["jobs"].values()), "no key anywhere"

    def token_request(event: Event) -> tuple[str, str]:
        return sigstore.oidc.actions_token_request(
            repository=GITHUB_REPOSITORY, ref=event.ref, sha=repo.head
        )

    runner.oidc = token_request
    repo.tag("v5.0.0")
    tag = Event(
        "push",
        "refs/tags/v5.0.0",
        {"ref": "refs/tags/v5.0.0", "repository": {"default_branch": "main"}},
    )
    asked = len(sigstore.oidc.token_requests)
    ran = runner.run(workflow, tag)
    assert ran == ["build", "scan", "sign", "publish", "github-release", "production"], ran
    assert runner.oidc_jobs == ["sign"], "only the signing job may mint an OIDC token"
    requests = sigstore.oidc.token_requests[asked:]
    assert requests and all(
        (r.audience, r.authorized, r.answered) == ("sigstore", True, True) for r in requests
    ), requests

    published = release_tags(bench.client(), repo.repository)
    release = published["5.0.0"]
    assert {t for t, d in published.items() if d == release} >= {"5.0.0", "production"}
    identity = f"https://github.com/{GITHUB_REPOSITORY}/{GITHUB_WORKFLOW}@refs/tags/v5.0.0"
    ref = f"{bench.registry.host}/{repo.repository}@{release}"
    verified = cosign_verify(bench, sigstore, ref, identity, "github")
    assert verified.returncode == 0, verified.stderr[-2000:]
    # Another tag's identity does not verify it: the certificate names exactly this release.
    other = cosign_verify(bench, sigstore, ref, identity.replace("v5.0.0", "v5.0.1"), "github")
    assert other.returncode != 0


GITLAB_PROJECT = "acme/sample-app"


def test_the_gitlab_pipeline_signs_keylessly_with_its_id_token(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path
) -> None:
    repo = keyless_clone(
        tmp_path / "project",
        "tests/gitlab-keyless",
        "gitlab",
        GITLAB_PROJECT,
        ".gitlab-ci.yml",
        server=f"https://{GITLAB_HOST}",  # the bench's GitLab: a self-managed instance's name
    )
    bench_env = sigstore_env(sigstore, "gitlab")
    ci_python = job_python(repo, tmp_path, bench_env)
    generated = yaml.safe_load((repo.path / "workflows" / "gitlab-ci.yml").read_text())
    with_tokens = sorted(
        name for name, job in generated.items() if isinstance(job, dict) and "id_tokens" in job
    )
    assert with_tokens == ["sign"], "only the signing job may hold an OIDC token"
    assert generated["sign"]["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert "COSIGN" not in yaml.safe_dump(generated), "no key anywhere"

    repo.tag("v6.0.0")
    claims = {"project_path": GITLAB_PROJECT, "ref": "v6.0.0", "ref_type": "tag", "sha": repo.head}
    variables = {
        **tag_pipeline_variables(bench, repo, "v6.0.0", tmp_path),
        **bench_env,
        # What GitLab puts in the variable the sign job's id_tokens names.
        "SIGSTORE_ID_TOKEN": sigstore.token("gitlab", **claims),
    }
    result = run_pipeline(repo, ci_python, variables)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    for job in ("build", "scan", "sign", "publish", "release", "production"):
        assert f"PASS  {job}" in log, log[-3000:]

    published = release_tags(bench.client(), repo.repository)
    release = published["6.0.0"]
    assert {t for t, d in published.items() if d == release} >= {"6.0.0", "production"}
    identity = sigstore.identity("gitlab", **claims)
    assert identity == f"https://{GITLAB_HOST}/{GITLAB_PROJECT}//.gitlab-ci.yml@refs/tags/v6.0.0"
    ref = f"{bench.registry.host}/{repo.repository}@{release}"
    verified = cosign_verify(bench, sigstore, ref, identity, "gitlab")
    assert verified.returncode == 0, verified.stderr[-2000:]
