"""Spec -> GitHub Actions workflow model. Pure: no clock, no environment, no files.

Jobs call the same nox sessions a laptop runs; tags, digests and tool flags stay in Python.
- push to the default branch or a version tag (the spec's `release_tag`): preflight, build (one
  job under QEMU, or one job per platform on its native runner, then merge) -> scan -> sign ->
  publish; for a version tag also a GitHub Release (notes from dist/release.json) and the
  production promotion behind its protected environment (verify first);
- pull request: one job that builds and scans; nothing is pushed or signed, no secret is read;
- workflow_dispatch: rollback of every image (or one) to an earlier published version.

Every job installs the tool hash-locked (`pipeline.lock`) into the runner's Python, or runs in
the job image (`ci.github_job_container`), which holds exactly that. Secrets reach only the steps
that use them: the registry password the login step, the signing key and its password the sign
step. Permissions: `contents: read` at the top; each job adds only what it needs.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping

from pipeline import paths
from pipeline.emit import lock, pins
from pipeline.emit.models import Job, Step, Workflow
from pipeline.emit.notes import NOTES_FILE, output_name
from pipeline.emit.yamldump import Annotated
from pipeline.spec import LOCAL_REGISTRY, Spec
from pipeline.stages import StageName, session_command

GHCR = "ghcr.io"
DIST = str(paths.DIST)
IS_PUSH = "github.event_name == 'push'"
IS_TAG = "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/')"
IS_PR = "github.event_name == 'pull_request'"
IS_DISPATCH = "github.event_name == 'workflow_dispatch'"
# A fork's pull request gets a read-only token: code scanning uploads are not attempted there.
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
# Approvals of a protected environment may wait up to 30 days: what production and a GitHub
# Release download after publish is kept longer than that.
RELEASE_RETENTION_DAYS = 35
WORK_RETENTION_DAYS = 7
# Checks that the job image holds exactly the locked versions; downloads nothing.
LOCK_CHECK = "python -m pip install --no-index --require-hashes --no-deps --quiet -r pipeline.lock"
# A container job runs as root on a workspace the runner's user owns, and checkout's own
# safe.directory lives in a temporary HOME it deletes: git (and the tool's reading of the commit
# and tags) refuses "dubious ownership" unless the job's HOME trusts the workspace
# (actions/runner#2033).
TRUST_WORKSPACE = 'git config --global --add safe.directory "$GITHUB_WORKSPACE"'


def release_tag_glob(pattern: str) -> str:
    """`v{{version}}` -> `v[0-9]+.[0-9]+.[0-9]+*`: GitHub's filter syntax for a semver tag."""
    return re.sub(r"\{\{\s*version\s*\}\}", "[0-9]+.[0-9]+.[0-9]+*", pattern)


def _secret(name: str) -> str:
    return "${{ secrets." + name + " }}"


def _var(name: str) -> str:
    return "${{ vars." + name + " }}"


def sarif_category(image: str, platform: str) -> str:
    """One code-scanning category per image and platform: github.com rejects several SARIF
    runs under one category (codeql-action#3051)."""
    return f"trivy-{image}-{paths.platform_slug(platform)}"


def builder_registry_config(spec: Spec, spec_path: str) -> str:
    """buildkitd.toml naming the registry's CA for setup-buildx-action, or "" when the registry
    has none (or is the built-in local one, whose CA is the sandbox's). The CA path is relative
    to the checkout: buildx reads the files a buildkitd.toml names from its working directory,
    the workspace, and copies them into the builder (buildx `confutil.LoadConfigFiles`)."""
    ca_file = spec.registry.ca_file
    if not ca_file or spec.registry.host == LOCAL_REGISTRY:
        return ""
    path = posixpath.normpath(posixpath.join(posixpath.dirname(spec_path), ca_file))
    return f"[registry.{json.dumps(spec.registry.host)}]\n  ca = [{json.dumps(path)}]\n"


class _Builder:
    def __init__(self, spec: Spec, spec_path: str) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.ci = spec.ci
        self.ghcr = spec.registry.host == GHCR
        self.local = spec.registry.host == LOCAL_REGISTRY
        self.keyless = spec.sign.keyless is not None
        self.platforms = sorted({p for image in spec.images for p in image.platforms})
        self.in_container = spec.ci.github_job_container and spec.ci.job_image is not None
        self.job_image_on_ghcr = self.in_container and str(spec.ci.job_image).startswith(GHCR + "/")

    # -- steps ------------------------------------------------------------------------------

    def checkout(self) -> Step:
        # All history and tags: the floating-tag rule compares this release with every other.
        return Step(
            name="Check out (with tags)",
            uses=pins.CHECKOUT,
            with_={"fetch-depth": 0, "persist-credentials": False},
        )

    def setup(self) -> list[Step]:
        """What every job starts with: the checkout and the tool."""
        return [self.checkout(), *self.tool()]

    def tool(self) -> list[Step]:
        """The runner's Python with the tool hash-locked, or the job image's, checked (and the
        checkout trusted: the container's root does not own it)."""
        if self.in_container:
            return [
                Step(
                    name="Trust the checkout (the job container's root does not own it)",
                    run=TRUST_WORKSPACE,
                ),
                Step(name="Check the job image holds the locked tool", run=LOCK_CHECK),
            ]
        return [
            Step(
                name="Set up Python",
                uses=pins.SETUP_PYTHON,
                with_={"python-version": self.ci.python_version},
            ),
            Step(name="Install the tool and nox (hash-locked)", run=lock.INSTALL_COMMAND),
        ]

    def qemu(self) -> Step:
        foreign = sorted({p.split("/")[1] for p in self.platforms if p != "linux/amd64"})
        return Step(
            name="Set up QEMU", uses=pins.SETUP_QEMU, with_={"platforms": ",".join(foreign)}
        )

    def buildx(self) -> Step:
        """The docker-container builder. A registry with a private CA (`registry.ca_file`)
        gets it in the builder's buildkitd.toml: BuildKit runs in its own container, so the
        runner's trust store does not reach its base-image pulls and registry cache."""
        config = builder_registry_config(self.spec, self.spec_path)
        return Step(
            name="Set up Docker Buildx",
            uses=pins.SETUP_BUILDX,
            with_={"buildkitd-config-inline": config} if config else {},
        )

    def cosign(self) -> list[Step]:
        """The installer checks the sha256 of its bootstrap cosign and the signature of the
        release it installs. The job image has its own cosign, and no curl, which the installer
        downloads with: nothing to install there."""
        if self.in_container:
            return []
        return [
            Step(
                name="Install cosign (checksum and signature verified)",
                uses=pins.COSIGN_INSTALLER,
                with_={"cosign-release": self.ci.cosign_release},
            )
        ]

    def registry(self) -> str:
        return _var("PIPELINE_REGISTRY") if self.local else self.spec.registry.host

    def login(self) -> Step:
        """The one step that sees the registry password."""
        if self.ghcr:
            credentials = {"username": "${{ github.actor }}", "password": _secret("GITHUB_TOKEN")}
        else:
            credentials = {
                "username": _secret(self.ci.registry_username_secret),
                "password": _secret(self.ci.registry_password_secret),
            }
        return Step(
            name="Log in to the registry",
            uses=pins.LOGIN,
            with_={"registry": self.registry(), **credentials},
        )

    def session(
        self,
        name: str,
        stage: StageName,
        *args: str,
        env: Mapping[str, str] | None = None,
        if_: str | None = None,
        id_: str | None = None,
    ) -> Step:
        """A step that runs one stage's nox session."""
        return Step(name=name, run=session_command(stage, *args), env=env or {}, if_=if_, id=id_)

    def upload(self, artifact: str, *, always: bool = False, days: int = 0) -> Step:
        return Step(
            name=f"Keep {DIST}/ for the next job ({artifact})",
            if_="always()" if always else None,
            uses=pins.UPLOAD_ARTIFACT,
            with_={
                "name": artifact,
                "path": f"{DIST}/",
                "include-hidden-files": False,
                "if-no-files-found": "error",
                "retention-days": days or WORK_RETENTION_DAYS,
                # A re-run of a failed job uploads again under the same name in the same run.
                "overwrite": True,
            },
        )

    def download(self, artifact: str, *, pattern: bool = False) -> Step:
        with_: dict[str, object] = {"path": f"{DIST}/"}
        if pattern:
            with_.update({"pattern": artifact, "merge-multiple": True})
        else:
            with_["name"] = artifact
        return Step(
            name=f"Get {DIST}/ from the previous job ({artifact})",
            uses=pins.DOWNLOAD_ARTIFACT,
            with_=with_,
        )

    def sarif(self, *, pull_request: bool = False) -> list[Step]:
        """One upload per image and platform, each with its own category, only when the scan
        wrote that file (a reused digest is not scanned again) and, for a pull request, only
        when it comes from this repository (a fork's token cannot upload)."""
        steps = []
        for image in self.spec.images:
            for platform in sorted(image.platforms):
                sarif = f"{paths.SCAN_DIR}/{image.name}/{paths.platform_slug(platform)}.sarif"
                condition = f"always() && hashFiles('{sarif}') != ''"
                if pull_request:
                    condition += f" && {SAME_REPOSITORY}"
                steps.append(
                    Step(
                        name=f"Code scanning: {image.name} {platform}",
                        if_=condition,
                        uses=pins.UPLOAD_SARIF,
                        with_={
                            "sarif_file": sarif,
                            "category": sarif_category(image.name, platform),
                        },
                    )
                )
        return steps

    # -- jobs -------------------------------------------------------------------------------

    def permissions(
        self,
        *,
        push: bool = False,
        sarif: bool = False,
        oidc: bool = False,
        contents: str = "read",
        attestations: bool = False,
    ) -> dict[str, str | Annotated]:
        granted: dict[str, str | Annotated] = {
            "contents": contents
            if contents == "read"
            else Annotated(contents, "create the GitHub Release of this tag")
        }
        if push and self.ghcr:
            granted["packages"] = Annotated("write", "push images and signatures to GHCR")
        if sarif:
            granted["security-events"] = Annotated("write", "upload SARIF to code scanning")
        if oidc:
            granted["id-token"] = Annotated("write", "OIDC token for keyless signing")
        if attestations:
            granted["attestations"] = Annotated("write", "store the provenance attestation")
        return granted

    def public_key_env(self) -> dict[str, str]:
        if self.keyless:
            return {}
        return {self.spec.sign.public_key_env: _var(self.ci.cosign_public_key_variable)}

    def signing_env(self) -> dict[str, str]:
        """The sign step's environment: the key and its password, nowhere else."""
        if self.keyless:
            return {}
        return {
            self.spec.sign.key_env: _secret(self.ci.cosign_key_secret),
            "COSIGN_PASSWORD": _secret(self.ci.cosign_password_secret),
            **self.public_key_env(),
        }

    def mirror_env(self) -> dict[str, str]:
        env = {}
        for mirror in self.spec.publish.mirrors:
            for name in (mirror.username_env, mirror.password_env):
                if name:
                    env[name] = _secret(name)
        return env

    def job(
        self,
        name: str,
        steps: list[Step],
        *,
        permissions: Mapping[str, str | Annotated],
        needs: tuple[str, ...] = (),
        if_: str | None = None,
        environment: str | None = None,
        runs_on: str | None = None,
        concurrency: str | None = None,
        timeout: int = 30,
    ) -> Job:
        if self.job_image_on_ghcr and "packages" not in permissions:
            permissions = {
                **permissions,
                "packages": Annotated("read", "the runner pulls the job image from GHCR"),
            }
        return Job(
            name=name,
            runs_on=runs_on or self.ci.github_default_runner,
            steps=tuple(steps),
            permissions=permissions,
            needs=needs,
            if_=if_,
            environment=environment,
            container=self.container(),
            concurrency=(
                {"group": "${{ github.workflow }}-" + concurrency, "cancel-in-progress": False}
                if concurrency
                else {}
            ),
            timeout_minutes=timeout,
        )

    def container(self) -> dict[str, object]:
        """The job container. On GHCR the runner pulls it with the job's token (a package of a
        private repository is private): `packages: read` in every job that runs in it. An image
        elsewhere is pulled anonymously, so it must be public there."""
        if not self.in_container:
            return {}
        container: dict[str, object] = {"image": self.ci.job_image}
        if self.job_image_on_ghcr:
            token = _secret("GITHUB_TOKEN")
            container["credentials"] = {"username": "${{ github.actor }}", "password": token}
        return container

    def jobs(self) -> dict[str, Job]:
        jobs: dict[str, Job] = {}
        triggers = self.ci.triggers
        if "pull_request" in triggers:
            jobs["pull-request"] = self.job(
                "Pull request: build and scan (nothing pushed)",
                [
                    *self.setup(),
                    self.qemu(),
                    self.buildx(),
                    self.session("Preflight", "preflight"),
                    self.session("Build (not pushed)", "build"),
                    self.session("Scan", "scan"),
                    *self.sarif(pull_request=True),
                ],
                if_=IS_PR,
                permissions=self.permissions(sarif=True),
                timeout=60,
            )
        if "push" in triggers or "tag" in triggers:
            jobs.update(self.release_jobs())
        if "dispatch" in triggers:
            jobs["rollback"] = self.job(
                "Rollback: point the floating tag at an earlier published version",
                [
                    *self.setup(),
                    *self.cosign(),
                    self.login(),
                    *self.rollback_steps(),
                ],
                if_=IS_DISPATCH,
                environment=self.ci.production_environment,
                permissions=self.permissions(push=True),
                concurrency="production",
            )
        return jobs

    def rollback_steps(self) -> list[Step]:
        env = {"TAG": "${{ inputs.tag }}", "VERSION": "${{ inputs.version }}"}
        env.update(self.public_key_env())
        args = ("--tag", '"$TAG"', "--version", '"$VERSION"')
        if len(self.spec.images) == 1:
            label = "Verify that release, then move the tag"
            return [self.session(label, "promote", *args, env=env)]
        steps = [
            self.session(
                "Verify that release of every image, then move their tags",
                "promote",
                *args,
                env=env,
                if_="inputs.image == 'all'",
            )
        ]
        for image in self.spec.images:
            steps.append(
                self.session(
                    f"Verify that release of {image.name}, then move its tag",
                    "promote",
                    *args,
                    "--image",
                    image.name,
                    env=env,
                    if_=f"inputs.image == '{image.name}'",
                )
            )
        return steps

    def build_jobs(self) -> dict[str, Job]:
        jobs: dict[str, Job] = {}
        release = self.ci.release_environment
        runners: Mapping[str, str] = self.ci.github_runners
        if not runners:
            jobs["build"] = self.job(
                "Build every platform (QEMU), pushed by digest",
                [
                    *self.setup(),
                    self.session("Preflight", "preflight"),
                    self.qemu(),
                    self.buildx(),
                    self.login(),
                    self.session("Build", "build"),
                    self.upload("dist-build"),
                ],
                if_=IS_PUSH,
                permissions=self.permissions(push=True),
                environment=release,
                timeout=90,
            )
            return jobs
        # Preflight first, in a job of its own: no build starts on a Dockerfile it refuses.
        jobs["preflight"] = self.job(
            "Preflight: Dockerfiles and build contexts",
            [*self.setup(), self.session("Preflight", "preflight")],
            if_=IS_PUSH,
            permissions=self.permissions(),
            timeout=10,
        )
        for platform in self.platforms:
            slug = paths.platform_slug(platform)
            jobs[f"build-{slug}"] = self.job(
                f"Build {platform} on its own runner (pushed by digest)",
                [
                    *self.setup(),
                    self.buildx(),
                    self.login(),
                    self.session("Build", "build", "--platform", platform),
                    self.upload(f"dist-build-{slug}"),
                ],
                runs_on=runners.get(platform, self.ci.github_default_runner),
                needs=("preflight",),
                permissions=self.permissions(push=True),
                environment=release,
                timeout=90,
            )
        jobs["build"] = self.job(
            "Merge the platform builds into one index",
            [
                *self.setup(),
                self.login(),
                self.download("dist-build-*", pattern=True),
                self.session("Merge", "merge"),
                self.upload("dist-build"),
            ],
            needs=tuple(f"build-{paths.platform_slug(p)}" for p in self.platforms),
            permissions=self.permissions(push=True),
            environment=release,
        )
        return jobs

    def release_jobs(self) -> dict[str, Job]:
        release = self.ci.release_environment
        jobs = self.build_jobs()
        jobs["scan"] = self.job(
            "Scan every platform (Trivy gate)",
            [
                *self.setup(),
                self.login(),
                self.download("dist-build"),
                self.session("Scan", "scan"),
                *self.sarif(),
                self.upload("dist-scan", always=True),
            ],
            needs=("build",),
            permissions=self.permissions(sarif=True),
            environment=release,
        )
        jobs["sign"] = self.job(
            "Sign and attest the scanned digest",
            [
                *self.setup(),
                *self.cosign(),
                self.login(),
                self.download("dist-scan"),
                self.session("Sign", "sign", env=self.signing_env()),
                self.upload("dist-sign"),
            ],
            needs=("scan",),
            permissions=self.permissions(push=True, oidc=self.keyless),
            environment=release,
        )
        jobs["publish"] = self.job(
            "Publish: point the tags at the signed digest",
            [
                *self.setup(),
                self.login(),
                self.download("dist-sign"),
                self.session("Publish", "publish", env=self.mirror_env()),
                self.upload("dist-release", days=RELEASE_RETENTION_DAYS),
            ],
            needs=("sign",),
            permissions=self.permissions(push=True),
            environment=release,
            # Publishes of different commits one at a time, the newest waiting one last: an
            # older run never moves a floating tag back after a newer one.
            concurrency="publish",
        )
        if self.ci.attest_provenance:
            jobs["provenance"] = self.job(
                "Provenance: attest-build-provenance on each index digest",
                [
                    *self.setup(),
                    self.download("dist-release"),
                    self.session("Digests of this release", "notes", id_="release"),
                    self.login(),
                    *self.attest_steps(),
                ],
                needs=("publish",),
                permissions=self.permissions(push=True, oidc=True, attestations=True),
                environment=release,
            )
        jobs["github-release"] = self.job(
            "GitHub Release of this version (digests, verify commands, scan)",
            [
                *self.setup(),
                self.download("dist-release"),
                self.session("Release notes", "notes"),
                Step(
                    name="Create the GitHub Release",
                    run=(
                        'gh release create "$GITHUB_REF_NAME" --verify-tag '
                        f'--title "$GITHUB_REF_NAME" --notes-file {DIST}/{NOTES_FILE}'
                    ),
                    env={"GH_TOKEN": "${{ github.token }}", "GH_REPO": "${{ github.repository }}"},
                ),
            ],
            needs=("publish",),
            if_=IS_TAG,
            permissions=self.permissions(contents="write"),
            timeout=10,
        )
        jobs["production"] = self.job(
            f"Promote to {self.ci.production_environment} (verified first)",
            [
                *self.setup(),
                *self.cosign(),
                self.login(),
                self.download("dist-release"),
                self.session(
                    "Verify signature, attestations and scan",
                    "verify",
                    env=self.public_key_env(),
                ),
                self.session(
                    f"Move the {self.ci.production_tag} tag of every image",
                    "promote",
                    "--tag",
                    self.ci.production_tag,
                    env=self.public_key_env(),
                ),
            ],
            needs=("publish",),
            if_=IS_TAG,
            environment=self.ci.production_environment,
            permissions=self.permissions(push=True),
            concurrency="production",
        )
        return jobs

    def attest_steps(self) -> list[Step]:
        steps = []
        for image in self.spec.images:
            key = output_name(image.name)
            steps.append(
                Step(
                    name=f"Attest the provenance of {image.name}",
                    uses=pins.ATTEST_BUILD_PROVENANCE,
                    with_={
                        "subject-name": "${{ steps.release.outputs." + key + "-repository }}",
                        "subject-digest": "${{ steps.release.outputs." + key + "-digest }}",
                        "push-to-registry": True,
                    },
                )
            )
        return steps

    def on(self) -> dict[str, object]:
        triggers = self.ci.triggers
        on: dict[str, object] = {}
        push: dict[str, list[str]] = {}
        if "push" in triggers:
            push["branches"] = [self.ci.default_branch]
        if "tag" in triggers:
            push["tags"] = [release_tag_glob(self.spec.tags.release_tag)]
        if push:
            on["push"] = push
        if "pull_request" in triggers:
            on["pull_request"] = {"branches": [self.ci.default_branch]}
        if "dispatch" in triggers:
            inputs: dict[str, object] = {
                "version": {
                    "description": "the published version to roll back to (e.g. 1.4.2)",
                    "required": True,
                    "type": "string",
                },
                "tag": {
                    "description": "floating tag to move (never a version or sha tag)",
                    "required": True,
                    "type": "string",
                    "default": self.ci.production_tag,
                },
            }
            if len(self.spec.images) > 1:
                inputs["image"] = {
                    "description": "which image to roll back (all: the whole release set)",
                    "required": True,
                    "type": "choice",
                    "options": ["all", *(image.name for image in self.spec.images)],
                    "default": "all",
                }
            on["workflow_dispatch"] = {"inputs": inputs}
        return on

    def workflow(self) -> Workflow:
        env = {"PIPELINE_SPEC": self.spec_path}
        if self.local:
            env["PIPELINE_REGISTRY"] = _var("PIPELINE_REGISTRY")
        return Workflow(
            name=f"release {self.spec.name}",
            on=self.on(),
            permissions={"contents": "read"},
            # One run per commit at a time: a push to main and a tag of the same commit run one
            # after the other (the second reuses the signed digest). Pull requests: per ref, and
            # a newer push cancels the older run. A release is never cancelled half-way.
            concurrency={
                "group": "${{ github.workflow }}-${{ github.event_name == 'pull_request' "
                "&& github.ref || github.sha }}",
                "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
            },
            env=env,
            jobs=self.jobs(),
        )


def workflow(spec: Spec, spec_path: str) -> Workflow:
    return _Builder(spec, spec_path).workflow()
