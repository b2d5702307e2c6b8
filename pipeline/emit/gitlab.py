"""Spec -> GitLab CI pipeline model. Pure: no clock, no environment, no files.

Same stages and sessions as the GitHub workflow: build (QEMU, or preflight then per-platform
jobs on tagged runners then merge) -> scan (container_scanning and cyclonedx reports) -> sign
(the key through a variable of the signing environment, or id_tokens when keyless: only here)
-> publish (one at a time: resource_group) -> for a version tag, a GitLab release and a manual,
protected production promotion that verifies first. Merge requests build and scan only, and are
interruptible. A pipeline run with PIPELINE_ROLLBACK_VERSION set rolls back instead.

Every job runs in the job image ($PIPELINE_JOB_IMAGE, by digest): Python 3.11, nox and the tool
at the locked version, docker CLI and buildx, cosign, Trivy. `before_script` checks that (no
install). Only the jobs that build get the docker-in-docker service ($PIPELINE_DIND_IMAGE, empty:
none, for a runner with its own dockerd at DOCKER_HOST) and the DOCKER_* variables.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline import paths
from pipeline.emit.github import LOCK_CHECK
from pipeline.emit.models import GitlabJob, GitlabPipeline
from pipeline.emit.notes import NOTES_FILE
from pipeline.spec import LOCAL_REGISTRY, Spec
from pipeline.stages import session_command

DIST = f"{paths.DIST}/"
IS_MR = '$CI_PIPELINE_SOURCE == "merge_request_event"'
IS_DEFAULT_BRANCH = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
IS_ROLLBACK = "$PIPELINE_ROLLBACK_VERSION && $CI_PIPELINE_SOURCE =~ /^(web|api|trigger)$/"
# Retried only when the runner, not the job, failed.
RETRY = {
    "max": 2,
    "when": ["runner_system_failure", "stuck_or_timeout_failure", "scheduler_failure"],
}
SIGSTORE_AUDIENCE = "sigstore"
DOCKER_VARIABLES = {
    "DOCKER_HOST": "tcp://docker:2376",
    "DOCKER_TLS_CERTDIR": "/certs",
    "DOCKER_CERT_PATH": "/certs/client",
    "DOCKER_TLS_VERIFY": "1",
}


def release_tag_regex(pattern: str) -> str:
    """`v{{version}}` -> `/^v[0-9]+\\.[0-9]+\\.[0-9]+/`: a GitLab rules regexp for a version tag."""
    parts = re.split(r"\{\{\s*version\s*\}\}", pattern)
    body = r"[0-9]+\.[0-9]+\.[0-9]+".join(re.escape(part) for part in parts)
    return f"/^{body}/"


def _dind() -> tuple[dict[str, Any], ...]:
    return ({"name": "$PIPELINE_DIND_IMAGE", "alias": "docker"},)


def pipeline(spec: Spec, spec_path: str) -> GitlabPipeline:
    ci = spec.ci
    platforms = sorted({p for image in spec.images for p in image.platforms})
    keyless = spec.sign.keyless is not None
    is_version_tag = f"$CI_COMMIT_TAG =~ {release_tag_regex(spec.tags.release_tag)}"
    never_rollback = {"if": IS_ROLLBACK, "when": "never"}
    release_rules = (never_rollback, {"if": IS_MR, "when": "never"}, {"when": "on_success"})
    tag_rules = (never_rollback, {"if": is_version_tag, "when": "on_success"})
    variables: dict[str, Any] = {
        "PIPELINE_SPEC": spec_path,
        "GIT_DEPTH": "0",  # every tag: the floating-tag rule compares with all releases
        # The docker executor checks out under `umask 0000` (files 0666): COPY keeps the modes,
        # so every layer differed from a local release of the commit. With this flag the
        # checkout has git's modes (0644/0755), as on a laptop (gitlab-runner MR 2539).
        "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR": "true",
        "PIPELINE_JOB_IMAGE": {
            "value": ci.job_image or "",
            "description": "the job image by digest (images/runner, released by pipeline)",
        },
        "PIPELINE_DIND_IMAGE": {
            "value": ci.gitlab_dind_image or "",
            "description": "docker-in-docker by digest, with the containerd image store "
            "(images/dind); empty: the runner's own dockerd at DOCKER_HOST",
        },
    }
    if spec.registry.host == LOCAL_REGISTRY:
        # No registry of its own in the spec: the project's own GitLab registry path (the only
        # one its job token may push to), with the job's credentials.
        variables["PIPELINE_REPOSITORY_BASE"] = "$CI_REGISTRY_IMAGE"
        if spec.registry.username_env and spec.registry.password_env:
            variables[spec.registry.username_env] = "$CI_REGISTRY_USER"
            variables[spec.registry.password_env] = "$CI_REGISTRY_PASSWORD"
    if "dispatch" in ci.triggers:
        variables["PIPELINE_ROLLBACK_VERSION"] = {
            "value": "",
            "description": "run a pipeline with this set to roll back to that published version",
        }
        variables["PIPELINE_ROLLBACK_TAG"] = {
            "value": ci.production_tag,
            "description": "the floating tag a rollback moves",
        }
        if len(spec.images) > 1:
            variables["PIPELINE_ROLLBACK_IMAGE"] = {
                "value": "all",
                "options": ["all", *(image.name for image in spec.images)],
                "description": "which image to roll back (all: the whole release set)",
            }

    jobs: dict[str, GitlabJob] = {}
    stages = ["build", "scan", "sign", "publish", "release", "production"]
    if "pull_request" in ci.triggers:
        jobs["merge-request"] = GitlabJob(
            stage="build",
            rules=({"if": IS_MR},),
            needs=(),
            services=_dind(),
            variables=DOCKER_VARIABLES,
            interruptible=True,  # a newer push to the merge request cancels this one
            timeout="1h",
            script=(
                session_command("preflight"),
                session_command("build"),
                session_command("scan"),
            ),
            artifacts=_scan_artifacts(),
        )
    work = {"paths": [DIST], "expire_in": "1 week"}
    if ci.gitlab_runner_tags:
        stages.insert(0, "preflight")
        jobs["preflight"] = GitlabJob(
            stage="preflight",
            rules=release_rules,
            needs=(),
            script=(session_command("preflight"),),
        )
        build_ids = []
        for platform in platforms:
            job_id = f"build:{paths.platform_slug(platform)}"
            build_ids.append(job_id)
            jobs[job_id] = GitlabJob(
                stage="build",
                rules=release_rules,
                needs=("preflight",),
                tags=tuple(ci.gitlab_runner_tags.get(platform, ())),
                services=_dind(),
                variables=DOCKER_VARIABLES,
                timeout="1h30m",
                script=(session_command("build", "--platform", platform),),
                artifacts=work,
            )
        jobs["build"] = GitlabJob(
            stage="build",
            rules=release_rules,
            needs=tuple(build_ids),
            script=(session_command("merge"),),
            artifacts=work,
        )
    else:
        jobs["build"] = GitlabJob(
            stage="build",
            rules=release_rules,
            needs=(),
            services=_dind(),
            variables=DOCKER_VARIABLES,
            timeout="1h30m",
            script=(session_command("preflight"), session_command("build")),
            artifacts=work,
        )
    jobs["scan"] = GitlabJob(
        stage="scan",
        rules=release_rules,
        needs=("build",),
        script=(session_command("scan"),),
        artifacts=_scan_artifacts(),
    )
    jobs["sign"] = GitlabJob(
        stage="sign",
        rules=release_rules,
        needs=("scan",),
        # The key (a file-type COSIGN_KEY) and COSIGN_PASSWORD are variables of this
        # environment alone: no other job names it, so no other job gets them.
        environment={"name": ci.signing_environment, "action": "access"} if not keyless else {},
        id_tokens={"SIGSTORE_ID_TOKEN": {"aud": SIGSTORE_AUDIENCE}} if keyless else {},
        script=(session_command("sign"),),
        artifacts=work,
    )
    jobs["publish"] = GitlabJob(
        stage="publish",
        rules=release_rules,
        needs=("sign",),
        # One publish at a time: an older pipeline never moves a floating tag after a newer one.
        resource_group="publish",
        script=(session_command("publish"),),
        artifacts={
            "paths": [DIST],
            "expire_in": "3 months",  # production may wait for its approval
            "reports": {"dotenv": str(paths.DOTENV)},
        },
    )
    jobs["release"] = GitlabJob(
        stage="release",
        rules=tag_rules,
        needs=("publish",),
        script=(session_command("notes"),),
        artifacts={"paths": [f"{DIST}{NOTES_FILE}"], "expire_in": "3 months"},
        release={
            "tag_name": "$CI_COMMIT_TAG",
            "name": "$CI_COMMIT_TAG",
            "description": f"{DIST}{NOTES_FILE}",
        },
    )
    production = {"name": ci.production_environment, "deployment_tier": "production"}
    jobs["production"] = GitlabJob(
        stage="production",
        rules=(never_rollback, {"if": is_version_tag, "when": "manual"}),
        needs=("publish",),
        environment=production,
        resource_group=ci.production_environment,
        script=(session_command("verify"), session_command("promote", "--tag", ci.production_tag)),
    )
    if "dispatch" in ci.triggers:
        jobs.update(_rollback_jobs(spec, production))
    return GitlabPipeline(
        stages=tuple(stages),
        variables=variables,
        default={
            "image": "$PIPELINE_JOB_IMAGE",
            # A check, not an install: the job image holds exactly the locked tool and tools.
            "before_script": [LOCK_CHECK],
            "interruptible": False,  # never cancel a release or a promotion half-way
            "timeout": "30m",
            "retry": RETRY,
        },
        workflow={
            "rules": [
                {"if": IS_MR},
                {"if": is_version_tag},
                {"if": IS_DEFAULT_BRANCH},
                {"if": IS_ROLLBACK},
            ]
        },
        jobs=jobs,
    )


def _rollback_jobs(spec: Spec, environment: dict[str, str]) -> dict[str, GitlabJob]:
    args = ("--tag", '"$PIPELINE_ROLLBACK_TAG"', "--version", '"$PIPELINE_ROLLBACK_VERSION"')
    if len(spec.images) == 1:
        choices: dict[str, tuple[str, tuple[str, ...]]] = {"rollback": (IS_ROLLBACK, ())}
    else:
        every = f'{IS_ROLLBACK} && $PIPELINE_ROLLBACK_IMAGE == "all"'
        choices = {"rollback": (every, ())}
        for image in spec.images:
            only = f'{IS_ROLLBACK} && $PIPELINE_ROLLBACK_IMAGE == "{image.name}"'
            choices[f"rollback:{image.name}"] = (only, ("--image", image.name))
    return {
        job_id: GitlabJob(
            stage="production",
            rules=({"if": condition, "when": "manual"},),
            needs=(),
            environment=environment,
            resource_group=spec.ci.production_environment,
            script=(session_command("promote", *args, *extra),),
        )
        for job_id, (condition, extra) in choices.items()
    }


def _scan_artifacts() -> dict[str, Any]:
    return {
        "when": "always",
        "paths": [DIST],
        "expire_in": "1 week",
        "reports": {
            "container_scanning": str(paths.GITLAB_SCANNING_REPORT),
            "cyclonedx": [f"{paths.SCAN_DIR}/*/*.cdx.json"],
        },
    }
