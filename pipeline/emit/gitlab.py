"""Spec -> GitLab CI pipeline model. Pure: no clock, no environment, no files.

Same stages and sessions as the GitHub workflow: build (QEMU, or per-platform jobs on tagged
runners then merge) -> scan (container_scanning report) -> sign (id_tokens only here, when
keyless) -> publish (dotenv report with digest and tags) -> a protected, manual production
promotion that verifies first. Merge requests build and scan only.

Docker runs as a docker-in-docker service with TLS. Its image comes from PIPELINE_DIND_IMAGE and
the daemon from DOCKER_HOST, both ordinary variables: a runner with its own dockerd sets
PIPELINE_DIND_IMAGE to empty (no service) and DOCKER_HOST to its socket.
"""

from __future__ import annotations

from typing import Any

from pipeline import paths
from pipeline.emit.models import GitlabJob, GitlabPipeline
from pipeline.spec import LOCAL_REGISTRY, Spec
from pipeline.stages import session_command
from pipeline.toolchain.requirements import NOX_REQUIREMENT

DIST = f"{paths.DIST}/"
IS_MR = '$CI_PIPELINE_SOURCE == "merge_request_event"'
NOT_MR = ({"if": IS_MR, "when": "never"}, {"when": "on_success"})


def pipeline(spec: Spec, spec_path: str) -> GitlabPipeline:
    ci = spec.ci
    platforms = sorted({p for image in spec.images for p in image.platforms})
    keyless = spec.sign.keyless is not None
    variables = {
        "PIPELINE_SPEC": spec_path,
        "GIT_DEPTH": "0",  # every tag: the floating-tag rule compares with all releases
        "PIPELINE_DIND_IMAGE": ci.gitlab_dind_image,
        "DOCKER_HOST": "tcp://docker:2376",
        "DOCKER_TLS_CERTDIR": "/certs",
        "DOCKER_CERT_PATH": "/certs/client",
        "DOCKER_TLS_VERIFY": "1",
    }
    if spec.registry.host == LOCAL_REGISTRY:
        # No registry of its own in the spec: GitLab's registry, with the job's credentials.
        variables["PIPELINE_REGISTRY"] = "$CI_REGISTRY"
        if spec.registry.username_env and spec.registry.password_env:
            variables[spec.registry.username_env] = "$CI_REGISTRY_USER"
            variables[spec.registry.password_env] = "$CI_REGISTRY_PASSWORD"
    jobs: dict[str, GitlabJob] = {}
    if "pull_request" in ci.triggers:
        jobs["merge-request"] = GitlabJob(
            stage="build",
            rules=({"if": IS_MR},),
            needs=(),
            script=(
                session_command("preflight"),
                session_command("build"),
                session_command("scan"),
            ),
            artifacts=_scan_artifacts(),
        )
    if ci.gitlab_runner_tags:
        build_ids = []
        for platform in platforms:
            job_id = f"build:{paths.platform_slug(platform)}"
            build_ids.append(job_id)
            jobs[job_id] = GitlabJob(
                stage="build",
                rules=NOT_MR,
                needs=(),
                tags=tuple(ci.gitlab_runner_tags.get(platform, ())),
                script=(session_command("build", "--platform", platform),),
                artifacts={"paths": [DIST], "expire_in": "1 week"},
            )
        jobs["build"] = GitlabJob(
            stage="build",
            rules=NOT_MR,
            needs=tuple(build_ids),
            script=(session_command("preflight"), session_command("merge")),
            artifacts={"paths": [DIST], "expire_in": "1 week"},
        )
    else:
        jobs["build"] = GitlabJob(
            stage="build",
            rules=NOT_MR,
            needs=(),
            script=(session_command("preflight"), session_command("build")),
            artifacts={"paths": [DIST], "expire_in": "1 week"},
        )
    jobs["scan"] = GitlabJob(
        stage="scan",
        rules=NOT_MR,
        needs=("build",),
        script=(session_command("scan"),),
        artifacts=_scan_artifacts(),
    )
    jobs["sign"] = GitlabJob(
        stage="sign",
        rules=NOT_MR,
        needs=("scan",),
        id_tokens={"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}} if keyless else {},
        script=(session_command("sign"),),
        artifacts={"paths": [DIST], "expire_in": "1 week"},
    )
    jobs["publish"] = GitlabJob(
        stage="publish",
        rules=NOT_MR,
        needs=("sign",),
        script=(session_command("publish"),),
        artifacts={
            "paths": [DIST],
            "expire_in": "1 month",
            "reports": {"dotenv": str(paths.DOTENV)},
        },
    )
    jobs["production"] = GitlabJob(
        stage="production",
        rules=({"if": "$CI_COMMIT_TAG", "when": "manual"},),
        needs=("publish",),
        environment={"name": ci.production_environment, "deployment_tier": "production"},
        resource_group=ci.production_environment,
        script=(session_command("verify"), session_command("promote", "--tag", ci.production_tag)),
    )
    return GitlabPipeline(
        stages=("build", "scan", "sign", "publish", "production"),
        variables=variables,
        default={
            "image": ci.gitlab_image,
            "services": [{"name": "$PIPELINE_DIND_IMAGE", "alias": "docker"}],
            "before_script": [
                f"python -m pip install --quiet {NOX_REQUIREMENT}",
                "nox -s toolchain -- --for release",
            ],
            "interruptible": False,  # never cancel a promotion half-way
        },
        workflow={
            "rules": [
                {"if": IS_MR},
                {"if": "$CI_COMMIT_TAG"},
                {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
            ]
        },
        jobs=jobs,
    )


def _scan_artifacts() -> dict[str, Any]:
    return {
        "when": "always",
        "paths": [DIST],
        "expire_in": "1 week",
        "reports": {"container_scanning": str(paths.GITLAB_SCANNING_REPORT)},
    }
