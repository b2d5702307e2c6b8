"""Contract tests: the server-side rules of github.com and gitlab.com the generated files rely
on, each checked on every spec variant, each citing where the service documents it. These rules
are enforced by the services, not by any linter or local runner, so they are written down here.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pipeline.emit import github, gitlab, pins
from pipeline.spec import Spec
from pipeline.specload import load_spec
from tests.support.spec_variants import variants

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = load_spec(ROOT / "sample-app" / "release.py").spec
VARIANTS = variants(SAMPLE)
NAMES = sorted(VARIANTS)


def _gh(name: str) -> dict[str, Any]:
    return github.workflow(VARIANTS[name], "sample-app/release.py").to_data()


def _gl(name: str) -> dict[str, Any]:
    data = gitlab.pipeline(VARIANTS[name], "sample-app/release.py").to_data()
    return {k: v for k, v in data.items() if isinstance(v, dict) and "script" in v}


def _uses(step: dict[str, Any], pin: pins.Pin) -> bool:
    return getattr(step.get("uses"), "action", None) == pin.action


def _events(spec: Spec) -> dict[str, set[str]]:
    """Which jobs each event runs (by the jobs' `if:`, following `needs`)."""
    jobs = github.workflow(spec, "release.py").to_data()["jobs"]
    runs: dict[str, set[str]] = {}
    for event, ref in (
        ("push", "refs/heads/main"),
        ("push", "refs/tags/v1.0.0"),
        ("pull_request", "refs/pull/1/merge"),
        ("workflow_dispatch", "refs/heads/main"),
    ):
        ran: set[str] = set()
        for job_id, job in jobs.items():
            condition = job.get("if")
            ok = {
                None: True,
                github.IS_PUSH: event == "push",
                github.IS_TAG: event == "push" and ref.startswith("refs/tags/"),
                github.IS_PR: event == "pull_request",
                github.IS_DISPATCH: event == "workflow_dispatch",
            }[condition]
            if ok and all(need in ran for need in job.get("needs", [])):
                ran.add(job_id)
        runs[f"{event} {ref}"] = ran
    return runs


# --- GitHub --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_one_sarif_run_per_category(name: str) -> None:
    """github.com code scanning rejects more than one SARIF run with the same category in one
    upload (since July 2025: github/codeql-action#3051; docs: "Uploading a SARIF file to
    GitHub", `category` must be unique per analysis). Trivy writes one run per file, so each
    upload is one file of one image and platform, under a category of its own; a file a
    reused release never wrote is not uploaded ("Path does not exist"), nor is a fork's pull
    request (read-only token)."""
    spec = VARIANTS[name]
    expected = {
        github.sarif_category(image.name, platform)
        for image in spec.images
        for platform in image.platforms
    }
    for job_id, job in _gh(name)["jobs"].items():
        uploads = [s for s in job["steps"] if _uses(s, pins.UPLOAD_SARIF)]
        if not uploads:
            continue
        categories = [s["with"]["category"] for s in uploads]
        assert len(categories) == len(set(categories)) and set(categories) == expected, job_id
        for step in uploads:
            sarif = step["with"]["sarif_file"]
            assert sarif.endswith(".sarif") and "*" not in sarif, "one file, not a folder"
            assert f"hashFiles('{sarif}') != ''" in step["if"]
            if job_id == "pull-request":
                assert github.SAME_REPOSITORY in step["if"]


@pytest.mark.parametrize("name", NAMES)
def test_container_jobs_run_on_linux_and_trust_the_checkout(name: str) -> None:
    """A job with `container:` needs a Linux runner ("Running jobs in a container": "If your
    workflows use Docker container actions, job containers, or service containers, then you
    must use a Linux runner"), and its steps, JavaScript actions included, run inside the
    container as its user, root here, while the workspace mounted at /__w belongs to the
    runner's user; actions/checkout trusts it only in a temporary HOME that it deletes, so
    git refuses the workspace afterwards ("detected dubious ownership", actions/runner#2033)
    unless a step trusts it before anything reads git. The job image has no curl, which
    cosign-installer downloads with: a container job uses the image's cosign."""
    for job_id, job in _gh(name)["jobs"].items():
        if not job.get("container"):
            continue
        assert str(job["runs-on"]).startswith("ubuntu-"), job_id
        runs = [s for s in job["steps"] if "run" in s]
        assert runs and runs[0]["run"] == github.TRUST_WORKSPACE, job_id
        first_run = job["steps"].index(runs[0])
        assert all(_uses(s, pins.CHECKOUT) for s in job["steps"][:first_run]), job_id
        assert not any(_uses(s, pins.COSIGN_INSTALLER) for s in job["steps"]), job_id
    if name == "job-container":
        assert all(job.get("container") for job in _gh(name)["jobs"].values())


@pytest.mark.parametrize("name", NAMES)
def test_a_private_job_image_is_pulled_with_credentials(name: str) -> None:
    """The runner pulls the job container's image before any step runs, so no login step can
    help: "If the image's container registry requires authentication to pull the image, you can
    use jobs.<job_id>.container.credentials" (Workflow syntax, `jobs.<job_id>.container`). A
    package a private repository publishes to GHCR is private ("About permissions for GitHub
    Packages"), and the job's GITHUB_TOKEN reads it with `packages: read`; the repository whose
    workflow published the package, and any repository connected to it, get that access ("About
    GitHub Packages with GitHub Actions")."""
    for job_id, job in _gh(name)["jobs"].items():
        container = job.get("container")
        if not container or not str(container["image"]).startswith("ghcr.io/"):
            continue
        assert container["credentials"] == {
            "username": "${{ github.actor }}",
            "password": "${{ secrets.GITHUB_TOKEN }}",
        }, job_id
        packages = job["permissions"].get("packages")
        assert getattr(packages, "value", packages) in ("read", "write"), job_id
    if name == "job-container-ghcr":
        assert all("credentials" in job["container"] for job in _gh(name)["jobs"].values())


@pytest.mark.parametrize("name", NAMES)
def test_the_builder_trusts_the_registrys_private_ca(name: str) -> None:
    """setup-buildx-action's default driver is docker-container: BuildKit runs in a container of
    its own, which the runner's trust store does not reach, so its base-image pulls and registry
    cache need the CA in its buildkitd.toml ("Configure BuildKit": `--buildkitd-config`; the
    action's `buildkitd-config-inline` input). buildx copies each CA file the config names into
    the builder, read from its working directory, the workspace (buildx
    util/confutil/container.go, `LoadConfigFiles`): the path is relative to the checkout."""
    spec = VARIANTS[name]
    setups = [s for job in _gh(name)["jobs"].values() for s in job["steps"]]
    setups = [s for s in setups if _uses(s, pins.SETUP_BUILDX)]
    assert setups
    if spec.registry.ca_file is None:
        assert all("buildkitd-config-inline" not in s.get("with", {}) for s in setups)
        return
    config = tomllib.loads(setups[0]["with"]["buildkitd-config-inline"])
    ca = posixpath.join("sample-app", spec.registry.ca_file)
    assert config == {"registry": {spec.registry.host: {"ca": [ca]}}}
    assert all(s["with"] == setups[0]["with"] for s in setups)


@pytest.mark.parametrize("name", NAMES)
def test_artifact_names_are_unique_in_a_run_and_outlive_the_approval_wait(name: str) -> None:
    """upload-artifact v4+: artifacts are immutable and a name can be uploaded once per run
    (actions/upload-artifact README, "Breaking Changes"; a job re-run uploads again: `overwrite`).
    Environment protection rules: a job waiting for a required reviewer fails after 30 days
    (docs: "Managing environments for deployment", wait timer and reviewers), so what the
    production job downloads is kept longer than that (`retention-days`, default 90)."""
    spec = VARIANTS[name]
    jobs = _gh(name)["jobs"]
    for event, ran in _events(spec).items():
        names = [
            s["with"]["name"]
            for job_id in ran
            for s in jobs[job_id]["steps"]
            if _uses(s, pins.UPLOAD_ARTIFACT)
        ]
        assert len(names) == len(set(names)), (event, names)
        uploaded = set(names)
        for job_id in ran:
            for step in jobs[job_id]["steps"]:
                if _uses(step, pins.DOWNLOAD_ARTIFACT):
                    wanted = step["with"].get("name") or step["with"]["pattern"]
                    pattern = re.compile(wanted.replace("*", ".*"))
                    assert any(pattern.fullmatch(n) for n in uploaded), (event, job_id, wanted)
    uploads = {
        s["with"]["name"]: s["with"]
        for job in jobs.values()
        for s in job["steps"]
        if _uses(s, pins.UPLOAD_ARTIFACT)
    }
    assert all(u["overwrite"] is True for u in uploads.values())
    for job_id in ("production", "github-release"):
        for step in jobs[job_id]["steps"]:
            if _uses(step, pins.DOWNLOAD_ARTIFACT):
                assert uploads[step["with"]["name"]]["retention-days"] > 30, job_id


@pytest.mark.parametrize("name", NAMES)
def test_environment_secrets_reach_only_the_steps_that_use_them(name: str) -> None:
    """Environment secrets are available only to jobs that reference the environment (docs:
    "Using environments for deployment": "a job ... cannot access environment secrets until
    ... the job references the environment"), and a secret is in a step's process only when
    that step names it (`${{ secrets.X }}` in its `env`/`with`). So: every job that names a
    secret names an environment, the signing key and its password are in the sign step
    alone, the registry password in the login step alone."""
    spec = VARIANTS[name]
    for job_id, job in _gh(name)["jobs"].items():
        assert "secrets." not in str(job.get("env", {})), f"{job_id}: a job-wide secret"
        for step in job["steps"]:
            named = set(re.findall(r"secrets\.(\w+)", str(step)))
            named.discard("GITHUB_TOKEN")
            if not named:
                continue
            assert job.get("environment"), f"{job_id} reads {named} without an environment"
            if _uses(step, pins.LOGIN):
                assert named <= {"REGISTRY_USERNAME", "REGISTRY_PASSWORD"}
            else:
                assert step.get("run") in ("nox -s sign", "nox -s publish"), (job_id, step)
                if step["run"] == "nox -s sign":
                    assert named == {"COSIGN_KEY", "COSIGN_PASSWORD"}
    oidc = {job_id for job_id, job in _gh(name)["jobs"].items() if "id-token" in job["permissions"]}
    expected = {"sign"} if spec.sign.keyless else set()
    if spec.ci.attest_provenance:
        expected.add("provenance")
    assert oidc == expected


@pytest.mark.parametrize("name", NAMES)
def test_only_version_tags_release_and_only_there_contents_write(name: str) -> None:
    """`on.push.tags` filters with the spec's release tag (docs: "Workflow syntax", filter
    patterns); a GitHub Release needs `contents: write` (docs: REST "Create a release",
    fine-grained permission "Contents" write), given to that job alone."""
    spec = VARIANTS[name]
    workflow = _gh(name)
    assert workflow["on"]["push"]["tags"] == [github.release_tag_glob(spec.tags.release_tag)]
    writers = {
        job_id
        for job_id, job in workflow["jobs"].items()
        if getattr(job["permissions"]["contents"], "value", job["permissions"]["contents"])
        == "write"
    }
    assert writers == {"github-release"}
    assert workflow["jobs"]["github-release"]["if"] == github.IS_TAG


# --- GitLab --------------------------------------------------------------------------------


def gitlab_maskable(value: str) -> bool:
    """GitLab's rule for a masked variable (docs: "CI/CD variables", Mask a CI/CD variable):
    a single line, no spaces, at least 8 characters, only letters, digits and `@:.~-_+=/`
    (the Base64 alphabet among them)."""
    return len(value) >= 8 and re.fullmatch(r"[A-Za-z0-9@:.~\-_+=/]+", value) is not None


def test_a_pem_key_cannot_be_masked_so_the_key_is_a_file_variable() -> None:
    """A PEM key has spaces and newlines: GitLab refuses to mask it. The sign job therefore
    reads COSIGN_KEY as a path (a file-type variable: its value is a temporary file's path,
    which is maskable and shows nothing), and COSIGN_PASSWORD, a URL-safe token, is masked."""
    pem = (
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        + "eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6OCwicCI6MX0\n"
        + "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    assert not gitlab_maskable(pem)
    assert gitlab_maskable("/builds/acme/app.tmp/COSIGN_KEY")  # what a file variable holds
    assert gitlab_maskable(secrets.token_urlsafe(24))
    readme = (ROOT / "README.md").read_text()
    assert "`COSIGN_KEY` of type **File**" in readme
    assert "`COSIGN_PASSWORD` **masked**" in readme


@pytest.mark.parametrize("name", NAMES)
def test_signing_variables_reach_only_the_sign_job(name: str) -> None:
    """Variables scoped to an environment reach only jobs whose `environment:name` matches
    (docs: "CI/CD variables", Limit the environment scope of a CI/CD variable). Only the sign
    job names the signing environment (`action: access`: no deployment is recorded); keyless,
    only it gets an ID token (docs: "id_tokens")."""
    spec = VARIANTS[name]
    jobs = _gl(name)
    signing = spec.ci.signing_environment
    named = {j for j, job in jobs.items() if job.get("environment", {}).get("name") == signing}
    if spec.sign.keyless:
        assert named == set()
        assert {j for j, job in jobs.items() if "id_tokens" in job} == {"sign"}
    else:
        assert named == {"sign"}
        assert jobs["sign"]["environment"]["action"] == "access"
        assert not any("id_tokens" in job for job in jobs.values())
    assert not any("COSIGN_KEY" in str(job.get("variables", {})) for job in jobs.values())


@pytest.mark.parametrize("name", NAMES)
def test_protected_variables_reach_only_protected_refs(name: str) -> None:
    """Protected variables are passed only to pipelines of protected branches and tags (docs:
    "CI/CD variables", Protect a CI/CD variable; "Protected tags"). Releases run only for the
    default branch and version tags, which the README says to protect (`v*`); a merge request
    pipeline (never protected) signs, publishes and promotes nothing."""
    spec = VARIANTS[name]
    data = gitlab.pipeline(spec, "sample-app/release.py").to_data()
    tag = f"$CI_COMMIT_TAG =~ {gitlab.release_tag_regex(spec.tags.release_tag)}"
    assert data["workflow"]["rules"] == [
        {"if": gitlab.IS_MR},
        {"if": tag},
        {"if": gitlab.IS_DEFAULT_BRANCH},
        {"if": gitlab.IS_ROLLBACK},
    ]
    regex = gitlab.release_tag_regex(spec.tags.release_tag).strip("/")
    assert re.match(regex, "v1.2.3") and not re.match(regex, "nightly")
    assert "Protected tags" in (ROOT / "README.md").read_text()
    jobs = _gl(name)
    mr = jobs["merge-request"]
    assert not any(s in line for line in mr["script"] for s in ("sign", "publish", "promote"))
    for job_id in ("sign", "publish", "production"):
        rules = jobs[job_id]["rules"]
        assert {"if": gitlab.IS_MR, "when": "never"} in rules or rules[-1]["if"] == tag, job_id


@pytest.mark.parametrize("name", NAMES)
def test_gitlab_release_and_production_only_for_version_tags(name: str) -> None:
    """The `release` keyword creates a release of `tag_name` (docs: "CI/CD YAML syntax",
    release; GitLab 18 runs it with glab, in the job image); a description that is a file
    path is read from the project directory."""
    spec = VARIANTS[name]
    jobs = _gl(name)
    tag = f"$CI_COMMIT_TAG =~ {gitlab.release_tag_regex(spec.tags.release_tag)}"
    assert jobs["release"]["rules"][-1] == {"if": tag, "when": "on_success"}
    assert jobs["release"]["release"]["description"] == "dist/release-notes.md"
    assert jobs["release"]["script"] == ["nox -s notes"]
    assert jobs["production"]["rules"][-1] == {"if": tag, "when": "manual"}
    assert jobs["publish"]["resource_group"] == "publish"
    assert jobs["merge-request"]["interruptible"] is True
