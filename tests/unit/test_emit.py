"""The generated CI definitions, checked as data: triggers, permissions, pins, injection safety,
fan-out modes, keyless signing, determinism, and that committed files are current."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.emit import GITHUB_FILE, GITLAB_FILE, generate, github, gitlab, pins
from pipeline.spec import Spec
from pipeline.specload import LoadedSpec, load_spec
from tests.support.spec_variants import JOB_CONTAINER, KEYLESS_GHCR, NATIVE

ROOT = Path(__file__).resolve().parents[2]
SHA = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def loaded() -> LoadedSpec:
    return load_spec(ROOT / "sample-app" / "release.py")


NATIVE_RUNNERS = {"github_runners": NATIVE["ci"].github_runners}


def _variant(loaded: LoadedSpec, **changes: Any) -> Spec:
    return replace(loaded.spec, **changes)


def _gh(spec: Spec) -> dict[str, Any]:
    return github.workflow(spec, "sample-app/release.py").to_data()


def _gl(spec: Spec) -> dict[str, Any]:
    return gitlab.pipeline(spec, "sample-app/release.py").to_data()


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_triggers(loaded: LoadedSpec) -> None:
    on = _gh(loaded.spec)["on"]
    assert on["push"] == {"branches": ["main"], "tags": ["v[0-9]+.[0-9]+.[0-9]+*"]}
    assert on["pull_request"] == {"branches": ["main"]}
    assert set(on["workflow_dispatch"]["inputs"]) == {"version", "tag"}
    assert on["workflow_dispatch"]["inputs"]["tag"]["default"] == "production"


def test_top_level_permissions_and_concurrency(loaded: LoadedSpec) -> None:
    workflow = _gh(loaded.spec)
    assert workflow["permissions"] == {"contents": "read"}
    # Per commit, so a push to main and a tag of the same commit never build at once; pull
    # requests per ref, cancelled by a newer push.
    group = workflow["concurrency"]["group"]
    assert "github.sha" in group and "github.ref" in group and "pull_request" in group
    assert "github.event_name == 'pull_request'" in workflow["concurrency"]["cancel-in-progress"]
    jobs = workflow["jobs"]
    assert jobs["publish"]["concurrency"] == {
        "group": "${{ github.workflow }}-publish",
        "cancel-in-progress": False,
    }
    assert jobs["production"]["concurrency"] == jobs["rollback"]["concurrency"]


def test_every_action_is_pinned_by_sha(loaded: LoadedSpec) -> None:
    for spec in (loaded.spec, _variant(loaded, **KEYLESS_GHCR), _variant(loaded, **NATIVE)):
        for step in _steps(_gh(spec)):
            if "uses" in step:
                assert isinstance(step["uses"], pins.Pin)
                assert SHA.match(step["uses"].uses), step["uses"]


def test_pins_are_full_shas_with_versions() -> None:
    for pin in pins.ALL:
        assert re.fullmatch(r"[0-9a-f]{40}", pin.sha) and re.fullmatch(
            r"v\d+\.\d+\.\d+", pin.version
        )


def test_no_expression_reaches_a_shell(loaded: LoadedSpec) -> None:
    for spec in (loaded.spec, _variant(loaded, **KEYLESS_GHCR), _variant(loaded, **NATIVE)):
        for step in _steps(_gh(spec)):
            assert "${{" not in step.get("run", ""), step


def test_run_steps_only_call_nox_sessions(loaded: LoadedSpec) -> None:
    runs = {step["run"] for step in _steps(_gh(loaded.spec)) if "run" in step}
    others = {r for r in runs if not r.startswith("nox -s ")}
    assert others == {
        "python -m pip install --require-hashes --no-deps -r pipeline.lock",
        'gh release create "$GITHUB_REF_NAME" --verify-tag --title "$GITHUB_REF_NAME" '
        "--notes-file dist/release-notes.md",
    }


def test_container_jobs_trust_the_checkout_and_use_the_images_cosign(loaded: LoadedSpec) -> None:
    """In the job image every job runs as root on a workspace the runner's user owns: right
    after checkout, the job's HOME trusts it (actions/runner#2033), or git refuses to read the
    commit. cosign is the image's: the installer would need curl, which the image lacks."""
    for changes in (JOB_CONTAINER, {"ci": replace(JOB_CONTAINER["ci"], **NATIVE_RUNNERS)}):
        workflow = _gh(_variant(loaded, **changes))
        for job_id, job in workflow["jobs"].items():
            assert job["container"] == {"image": JOB_CONTAINER["ci"].job_image}, job_id
            steps = job["steps"]
            assert steps[0]["uses"] == pins.CHECKOUT, job_id
            assert steps[1]["run"] == github.TRUST_WORKSPACE, job_id
            assert steps[2]["run"] == github.LOCK_CHECK, job_id
            assert all(s.get("uses") != pins.COSIGN_INSTALLER for s in steps), job_id
            assert all(s.get("uses") != pins.SETUP_PYTHON for s in steps), job_id
    on_the_runner = _gh(loaded.spec)
    assert all(s.get("run") != github.TRUST_WORKSPACE for s in _steps(on_the_runner))
    assert any(s.get("uses") == pins.COSIGN_INSTALLER for s in _steps(on_the_runner))


def test_pull_requests_never_push_sign_or_read_secrets(loaded: LoadedSpec) -> None:
    jobs = _gh(loaded.spec)["jobs"]
    pr = jobs["pull-request"]
    runs = [step["run"] for step in pr["steps"] if "run" in step]
    assert runs[1:] == ["nox -s preflight", "nox -s build", "nox -s scan"]
    assert runs[0].endswith("-r pipeline.lock")
    assert not any(s in r for r in runs for s in ("sign", "publish", "promote"))
    assert "secrets." not in str(pr)
    assert not any(
        getattr(step.get("uses"), "action", "") == pins.LOGIN.action for step in pr["steps"]
    )
    for job_id, job in jobs.items():
        if job_id != "pull-request":
            assert job.get("if", "") != "github.event_name == 'pull_request'"
            if "needs" not in job:
                assert "pull_request" not in job.get("if", "")


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def test_permissions_are_minimal_per_job(loaded: LoadedSpec) -> None:
    jobs = _gh(loaded.spec)["jobs"]
    grants = {
        job_id: {k: _plain(v) for k, v in job["permissions"].items()}
        for job_id, job in jobs.items()
    }
    assert {j for j, g in grants.items() if g["contents"] != "read"} == {"github-release"}
    assert grants["github-release"] == {"contents": "write"}
    assert {j for j, g in grants.items() if "security-events" in g} == {"pull-request", "scan"}
    assert not any("id-token" in g or "packages" in g for g in grants.values())


def test_keyless_and_ghcr_grant_only_where_needed(loaded: LoadedSpec) -> None:
    jobs = _gh(_variant(loaded, **KEYLESS_GHCR))["jobs"]
    oidc = {j for j, job in jobs.items() if "id-token" in job["permissions"]}
    assert oidc == {"sign"}
    packages = {j for j, job in jobs.items() if "packages" in job["permissions"]}
    assert packages == {"build", "sign", "publish", "production", "rollback"}
    assert "COSIGN_KEY" not in str(jobs["sign"].get("env", {}))
    gl = _gl(_variant(loaded, **KEYLESS_GHCR))
    with_tokens = {j for j, job in gl.items() if isinstance(job, dict) and "id_tokens" in job}
    assert with_tokens == {"sign"}
    assert gl["sign"]["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}


def test_key_mode_has_no_oidc_anywhere(loaded: LoadedSpec) -> None:
    assert "id_tokens" not in str(_gl(loaded.spec))
    sign = _gh(loaded.spec)["jobs"]["sign"]
    assert "env" not in sign, "no job-wide secret"
    step = next(s for s in sign["steps"] if s.get("run") == "nox -s sign")
    assert step["env"]["COSIGN_KEY"] == "${{ secrets.COSIGN_KEY }}"
    assert step["env"]["COSIGN_PASSWORD"] == "${{ secrets.COSIGN_PASSWORD }}"


def test_secret_reading_jobs_run_in_an_environment(loaded: LoadedSpec) -> None:
    for job_id, job in _gh(loaded.spec)["jobs"].items():
        reads_secrets = "secrets." in str(job)
        assert reads_secrets == (job_id not in ("pull-request", "github-release")), job_id
        if reads_secrets:
            assert job["environment"] in ("release", "production")


def test_single_runner_mode_builds_under_qemu(loaded: LoadedSpec) -> None:
    jobs = _gh(loaded.spec)["jobs"]
    build = [s.get("run") for s in jobs["build"]["steps"]]
    assert "nox -s build" in build
    assert any(
        getattr(s.get("uses"), "action", "") == pins.SETUP_QEMU.action
        for s in jobs["build"]["steps"]
    )
    assert not any(j.startswith("build-") for j in jobs)
    assert _gl(loaded.spec)["build"]["script"] == ["nox -s preflight", "nox -s build"]


def test_native_runner_mode_fans_out_then_merges(loaded: LoadedSpec) -> None:
    jobs = _gh(_variant(loaded, **NATIVE))["jobs"]
    assert jobs["build-linux-arm64"]["runs-on"] == "ubuntu-24.04-arm"
    assert jobs["build-linux-amd64"]["runs-on"] == "ubuntu-24.04"
    assert [s.get("run") for s in jobs["build-linux-arm64"]["steps"]][
        -2
    ] == "nox -s build -- --platform linux/arm64"
    assert not any(
        getattr(s.get("uses"), "action", "") == pins.SETUP_QEMU.action
        for s in jobs["build-linux-arm64"]["steps"]
    )
    assert jobs["build"]["needs"] == ["build-linux-amd64", "build-linux-arm64"]
    assert "nox -s merge" in [s.get("run") for s in jobs["build"]["steps"]]
    gl = _gl(_variant(loaded, **NATIVE))
    assert gl["build:linux-arm64"]["tags"] == ["arm64"]
    assert gl["build:linux-arm64"]["script"] == ["nox -s build -- --platform linux/arm64"]
    assert gl["build"]["needs"] == ["build:linux-amd64", "build:linux-arm64"]
    assert gl["build"]["script"][-1] == "nox -s merge"


def test_chain_and_production(loaded: LoadedSpec) -> None:
    jobs = _gh(loaded.spec)["jobs"]
    assert [jobs[j].get("needs") for j in ("scan", "sign", "publish", "production")] == [
        ["build"],
        ["scan"],
        ["sign"],
        ["publish"],
    ]
    production = jobs["production"]
    assert production["environment"] == "production"
    assert "refs/tags/" in production["if"]
    runs = [s.get("run") for s in production["steps"] if "run" in s]
    assert runs[-2:] == ["nox -s verify", "nox -s promote -- --tag production"]
    rollback = jobs["rollback"]
    assert rollback["steps"][-1]["run"] == 'nox -s promote -- --tag "$TAG" --version "$VERSION"'
    assert rollback["steps"][-1]["env"] == {
        "TAG": "${{ inputs.tag }}",
        "VERSION": "${{ inputs.version }}",
        "COSIGN_PUBLIC_KEY": "${{ vars.COSIGN_PUBLIC_KEY }}",
    }


def test_gitlab_structure(loaded: LoadedSpec) -> None:
    gl = _gl(loaded.spec)
    assert gl["stages"] == ["build", "scan", "sign", "publish", "release", "production"]
    text = yaml.safe_dump(gl)
    assert "only:" not in text and "except:" not in text
    jobs = {k: v for k, v in gl.items() if isinstance(v, dict) and "stage" in v}
    assert all("rules" in job for job in jobs.values())
    assert "services" not in gl["default"]
    dind = [{"name": "$PIPELINE_DIND_IMAGE", "alias": "docker"}]
    with_docker = {j for j, job in jobs.items() if "services" in job}
    assert with_docker == {"merge-request", "build"}, "sign, publish, production: no dind"
    for job_id in with_docker:
        assert jobs[job_id]["services"] == dind
        assert jobs[job_id]["variables"]["DOCKER_TLS_CERTDIR"] == "/certs"
        assert jobs[job_id]["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    assert "DOCKER_HOST" not in gl["variables"]
    assert gl["scan"]["artifacts"]["reports"] == {
        "container_scanning": "dist/gl-container-scanning-report.json",
        "cyclonedx": ["dist/scan/*/*.cdx.json"],
    }
    assert gl["publish"]["artifacts"]["reports"] == {"dotenv": "dist/release.env"}
    production = gl["production"]
    tag = "$CI_COMMIT_TAG =~ /^v[0-9]+\\.[0-9]+\\.[0-9]+/"
    assert production["rules"][-1] == {"if": tag, "when": "manual"}
    assert {"if": tag} in gl["workflow"]["rules"]
    assert {"if": "$CI_COMMIT_TAG"} not in gl["workflow"]["rules"], "only version tags"
    assert production["environment"]["name"] == "production"
    assert production["script"] == ["nox -s verify", "nox -s promote -- --tag production"]
    assert gl["merge-request"]["script"] == ["nox -s preflight", "nox -s build", "nox -s scan"]
    assert gl["default"]["image"] == "$PIPELINE_JOB_IMAGE"


def test_generation_is_deterministic(loaded: LoadedSpec) -> None:
    one = generate(loaded, ROOT)
    assert one == generate(loaded, ROOT)
    assert all(
        text.startswith("# generated from sample-app/release.py; do not edit")
        for text in one.values()
    )


def test_pins_are_commented_in_the_text(loaded: LoadedSpec) -> None:
    text = generate(loaded, ROOT)[GITHUB_FILE]
    assert f"uses: {pins.CHECKOUT.uses}  # {pins.CHECKOUT.version}" in text
    assert "security-events: write  # upload SARIF to code scanning" in text


def test_committed_workflows_are_current(loaded: LoadedSpec) -> None:
    """The drift check: workflows/ must equal what the spec generates now."""
    for relative, text in generate(loaded, ROOT).items():
        committed = (ROOT / relative).read_text()
        assert committed == text, f"{relative} is stale: run `nox -s workflows`"
    assert {GITHUB_FILE, GITLAB_FILE} == set(generate(loaded, ROOT))


def test_check_fails_with_a_diff_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    spec = str(ROOT / "sample-app" / "release.py")
    # A current lock: `workflows` keeps it and resolves nothing (a unit test starts no pip).
    shutil.copy(ROOT / "pipeline.lock", tmp_path / "pipeline.lock")
    assert main(["workflows", "--spec", spec, "--root", str(tmp_path)]) == 0
    assert main(["workflows", "--spec", spec, "--root", str(tmp_path), "--check"]) == 0
    stale = tmp_path / GITLAB_FILE
    stale.write_text(stale.read_text().replace("nox -s scan", "nox -s scan-old", 1))
    capsys.readouterr()
    assert main(["workflows", "--spec", spec, "--root", str(tmp_path), "--check"]) == 11
    out, err = capsys.readouterr()
    assert "-    - nox -s scan-old" in out and "+    - nox -s scan" in out
    assert err.strip().splitlines()[-1].startswith("error: generated CI files are stale")
    assert main(["workflows", "--spec", spec, "--root", str(tmp_path), "--install"]) == 0
    assert (tmp_path / ".github/workflows/release.yml").read_text() == (
        tmp_path / GITHUB_FILE
    ).read_text()
    assert (tmp_path / ".gitlab-ci.yml").is_file()
    (tmp_path / "pipeline.lock").write_text(
        (ROOT / "pipeline.lock").read_text().replace("nox[uv]==", "nox[uv]==0", 1)
    )
    capsys.readouterr()
    assert main(["workflows", "--spec", spec, "--root", str(tmp_path), "--check"]) == 11
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: pipeline.lock was resolved from other inputs (was: ")


def test_gitlab_checks_out_with_gits_modes(loaded: LoadedSpec) -> None:
    """GitLab's docker executor checks out under `umask 0000`: files 0666, which COPY keeps, so
    every image would differ from a local release of the commit (seen under gitlab-ci-local)."""
    for spec in (loaded.spec, _variant(loaded, **NATIVE)):
        assert _gl(spec)["variables"]["FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR"] == "true"
