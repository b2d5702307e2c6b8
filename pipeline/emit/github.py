"""Spec -> GitHub Actions workflow model. Pure: no clock, no environment, no files.

Jobs call the same nox sessions a laptop runs; tags, digests and tool flags stay in Python.
- push to the default branch or a release tag: build (one job under QEMU, or one job per
  platform on its native runner, then merge) -> scan -> sign -> publish -> production (tags only,
  behind the protected environment, verify first);
- pull request: one job that builds and scans; nothing is pushed or signed, no secret is read;
- workflow_dispatch: rollback, re-pointing a floating tag to an earlier verified digest.
Permissions: `contents: read` at the top; each job adds only what it needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline import paths
from pipeline.emit import pins
from pipeline.emit.models import Job, Step, Workflow
from pipeline.emit.yamldump import Annotated
from pipeline.spec import LOCAL_REGISTRY, Spec
from pipeline.stages import StageName, session_command
from pipeline.toolchain.requirements import NOX_REQUIREMENT

GHCR = "ghcr.io"
DIST = str(paths.DIST)
IS_PUSH = "github.event_name == 'push'"
IS_TAG = "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/')"
IS_PR = "github.event_name == 'pull_request'"
IS_DISPATCH = "github.event_name == 'workflow_dispatch'"


def release_tag_glob(pattern: str) -> str:
    """`v{{version}}` -> `v[0-9]+.[0-9]+.[0-9]+*`: GitHub's filter syntax for a semver tag."""
    return re.sub(r"\{\{\s*version\s*\}\}", "[0-9]+.[0-9]+.[0-9]+*", pattern)


def _secret(name: str) -> str:
    return "${{ secrets." + name + " }}"


def _var(name: str) -> str:
    return "${{ vars." + name + " }}"


class _Builder:
    def __init__(self, spec: Spec, spec_path: str) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.ci = spec.ci
        self.ghcr = spec.registry.host == GHCR
        self.local = spec.registry.host == LOCAL_REGISTRY
        self.keyless = spec.sign.keyless is not None
        self.platforms = sorted({p for image in spec.images for p in image.platforms})

    # -- steps ------------------------------------------------------------------------------

    def checkout(self) -> Step:
        # All history and tags: the floating-tag rule compares this release with every other.
        return Step(
            name="Check out (with tags)",
            uses=pins.CHECKOUT,
            with_={"fetch-depth": 0, "persist-credentials": False},
        )

    def python(self) -> Step:
        return Step(
            name="Set up Python",
            uses=pins.SETUP_PYTHON,
            with_={"python-version": self.ci.python_version},
        )

    def nox(self) -> Step:
        return Step(name="Install nox", run=f"python -m pip install {NOX_REQUIREMENT}")

    def qemu(self) -> Step:
        foreign = sorted({p.split("/")[1] for p in self.platforms if p != "linux/amd64"})
        return Step(
            name="Set up QEMU", uses=pins.SETUP_QEMU, with_={"platforms": ",".join(foreign)}
        )

    def buildx(self) -> Step:
        return Step(name="Set up Docker Buildx", uses=pins.SETUP_BUILDX)

    def cosign(self) -> Step:
        return Step(
            name="Install cosign",
            uses=pins.COSIGN_INSTALLER,
            with_={"cosign-release": self.ci.cosign_release},
        )

    def login(self) -> Step:
        if self.ghcr:
            credentials = {"username": "${{ github.actor }}", "password": _secret("GITHUB_TOKEN")}
        else:
            credentials = {
                "username": _secret(self.ci.registry_username_secret),
                "password": _secret(self.ci.registry_password_secret),
            }
        registry = _var("PIPELINE_REGISTRY") if self.local else self.spec.registry.host
        return Step(
            name="Log in to the registry",
            uses=pins.LOGIN,
            with_={"registry": registry, **credentials},
        )

    def session(
        self, name: str, stage: StageName, *args: str, env: Mapping[str, str] | None = None
    ) -> Step:
        """A step that runs one stage's nox session: the only kind of `run:` step generated."""
        return Step(name=name, run=session_command(stage, *args), env=env or {})

    def upload(self, artifact: str, *, always: bool = False) -> Step:
        return Step(
            name=f"Keep {DIST}/ for the next job",
            if_="always()" if always else None,
            uses=pins.UPLOAD_ARTIFACT,
            with_={
                "name": artifact,
                "path": f"{DIST}/",
                "include-hidden-files": False,
                "if-no-files-found": "error",
                "retention-days": 7,
            },
        )

    def download(self, artifact: str, *, pattern: bool = False) -> Step:
        with_: dict[str, object] = {"path": f"{DIST}/"}
        if pattern:
            with_.update({"pattern": artifact, "merge-multiple": True})
        else:
            with_["name"] = artifact
        return Step(
            name=f"Get {DIST}/ from the previous job", uses=pins.DOWNLOAD_ARTIFACT, with_=with_
        )

    def sarif(self) -> Step:
        return Step(
            name="Upload scan results to code scanning",
            if_="always()",
            uses=pins.UPLOAD_SARIF,
            with_={"sarif_file": str(paths.SCAN_DIR), "category": "trivy"},
        )

    # -- jobs -------------------------------------------------------------------------------

    def permissions(
        self, *, push: bool = False, sarif: bool = False, oidc: bool = False
    ) -> dict[str, str | Annotated]:
        granted: dict[str, str | Annotated] = {"contents": "read"}
        if push and self.ghcr:
            granted["packages"] = Annotated("write", "push images and signatures to GHCR")
        if sarif:
            granted["security-events"] = Annotated("write", "upload SARIF to code scanning")
        if oidc:
            granted["id-token"] = Annotated("write", "OIDC token for keyless signing")
        return granted

    def signing_env(self, *, sign: bool) -> dict[str, str]:
        env = {}
        if not self.keyless:
            if sign:
                env[self.spec.sign.key_env] = _secret(self.ci.cosign_key_secret)
                env["COSIGN_PASSWORD"] = _secret(self.ci.cosign_password_secret)
            env[self.spec.sign.public_key_env] = _var(self.ci.cosign_public_key_variable)
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
        env: Mapping[str, str] | None = None,
    ) -> Job:
        return Job(
            name=name,
            runs_on=self.ci.github_default_runner,
            steps=tuple(steps),
            permissions=permissions,
            needs=needs,
            if_=if_,
            environment=environment,
            env=env or {},
        )

    def jobs(self) -> dict[str, Job]:
        jobs: dict[str, Job] = {}
        triggers = self.ci.triggers
        if "pull_request" in triggers:
            jobs["pull-request"] = self.job(
                "Pull request: build and scan (nothing pushed)",
                [
                    self.checkout(),
                    self.python(),
                    self.qemu(),
                    self.buildx(),
                    self.nox(),
                    self.session("Preflight", "preflight"),
                    self.session("Build (not pushed)", "build"),
                    self.session("Scan", "scan"),
                    self.sarif(),
                ],
                if_=IS_PR,
                permissions=self.permissions(sarif=True),
            )
        if "push" in triggers or "tag" in triggers:
            jobs.update(self.release_jobs())
        if "dispatch" in triggers:
            jobs["rollback"] = self.job(
                "Rollback: point a floating tag at an earlier verified digest",
                [
                    self.checkout(),
                    self.python(),
                    self.cosign(),
                    self.login(),
                    self.nox(),
                    self.session(
                        "Verify the digest, then move the tag",
                        "promote",
                        "--tag",
                        '"$TAG"',
                        "--digest",
                        '"$DIGEST"',
                        env={"TAG": "${{ inputs.tag }}", "DIGEST": "${{ inputs.digest }}"},
                    ),
                ],
                if_=IS_DISPATCH,
                environment=self.ci.production_environment,
                permissions=self.permissions(push=True),
                env=self.signing_env(sign=False),
            )
        return jobs

    def release_jobs(self) -> dict[str, Job]:
        jobs: dict[str, Job] = {}
        runners: Mapping[str, str] = self.ci.github_runners
        if runners:
            for platform in self.platforms:
                slug = paths.platform_slug(platform)
                jobs[f"build-{slug}"] = Job(
                    name=f"Build {platform} on its own runner (pushed by digest)",
                    runs_on=runners.get(platform, self.ci.github_default_runner),
                    steps=(
                        self.checkout(),
                        self.python(),
                        self.buildx(),
                        self.login(),
                        self.nox(),
                        self.session("Build", "build", "--platform", platform),
                        self.upload(f"dist-build-{slug}"),
                    ),
                    if_=IS_PUSH,
                    permissions=self.permissions(push=True),
                    environment=self.ci.release_environment,
                )
            jobs["build"] = self.job(
                "Merge the platform builds into one index",
                [
                    self.checkout(),
                    self.python(),
                    self.login(),
                    self.nox(),
                    self.download("dist-build-*", pattern=True),
                    self.session("Preflight", "preflight"),
                    self.session("Merge", "merge"),
                    self.upload("dist-build"),
                ],
                needs=tuple(f"build-{paths.platform_slug(p)}" for p in self.platforms),
                if_=IS_PUSH,
                permissions=self.permissions(push=True),
                environment=self.ci.release_environment,
            )
        else:
            jobs["build"] = self.job(
                "Build every platform (QEMU), pushed by digest",
                [
                    self.checkout(),
                    self.python(),
                    self.qemu(),
                    self.buildx(),
                    self.login(),
                    self.nox(),
                    self.session("Preflight", "preflight"),
                    self.session("Build", "build"),
                    self.upload("dist-build"),
                ],
                if_=IS_PUSH,
                permissions=self.permissions(push=True),
                environment=self.ci.release_environment,
            )
        jobs["scan"] = self.job(
            "Scan every platform (Trivy gate)",
            [
                self.checkout(),
                self.python(),
                self.login(),
                self.nox(),
                self.download("dist-build"),
                self.session("Scan", "scan"),
                self.sarif(),
                self.upload("dist-scan", always=True),
            ],
            needs=("build",),
            permissions=self.permissions(sarif=True),
            environment=self.ci.release_environment,
        )
        jobs["sign"] = self.job(
            "Sign and attest the scanned digest",
            [
                self.checkout(),
                self.python(),
                self.cosign(),
                self.login(),
                self.nox(),
                self.download("dist-scan"),
                self.session("Sign", "sign"),
                self.upload("dist-sign"),
            ],
            needs=("scan",),
            permissions=self.permissions(push=True, oidc=self.keyless),
            environment=self.ci.release_environment,
            env=self.signing_env(sign=True),
        )
        jobs["publish"] = self.job(
            "Publish: point the tags at the signed digest",
            [
                self.checkout(),
                self.python(),
                self.login(),
                self.nox(),
                self.download("dist-sign"),
                self.session("Publish", "publish"),
                self.upload("dist-release"),
            ],
            needs=("sign",),
            permissions=self.permissions(push=True),
            environment=self.ci.release_environment,
        )
        jobs["production"] = self.job(
            f"Promote to {self.ci.production_environment} (verified first)",
            [
                self.checkout(),
                self.python(),
                self.cosign(),
                self.login(),
                self.nox(),
                self.download("dist-release"),
                self.session("Verify signature, attestations and scan", "verify"),
                self.session(
                    f"Move the {self.ci.production_tag} tag",
                    "promote",
                    "--tag",
                    self.ci.production_tag,
                ),
            ],
            needs=("publish",),
            if_=IS_TAG,
            environment=self.ci.production_environment,
            permissions=self.permissions(push=True),
            env=self.signing_env(sign=False),
        )
        return jobs

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
            on["workflow_dispatch"] = {
                "inputs": {
                    "tag": {
                        "description": "floating tag to move (never a version or sha tag)",
                        "required": True,
                        "type": "string",
                    },
                    "digest": {
                        "description": "earlier release digest to point it at (sha256:…)",
                        "required": True,
                        "type": "string",
                    },
                }
            }
        return on

    def workflow(self) -> Workflow:
        env = {"PIPELINE_SPEC": self.spec_path}
        if self.local:
            env["PIPELINE_REGISTRY"] = _var("PIPELINE_REGISTRY")
        return Workflow(
            name=f"release {self.spec.name}",
            on=self.on(),
            permissions={"contents": "read"},
            # One run per ref at a time; a release is never cancelled half-way through promotion.
            concurrency={"group": "release-${{ github.ref }}", "cancel-in-progress": False},
            env=env,
            jobs=self.jobs(),
        )


def workflow(spec: Spec, spec_path: str) -> Workflow:
    return _Builder(spec, spec_path).workflow()
