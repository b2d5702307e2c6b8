"""The release spec: what a project writes once, in Python, to describe its release.

Everything here is a frozen, keyword-only dataclass with a safe default, so a spec file reads as a
declaration and a typo in a keyword fails at once (the loader turns that into a one-line error
with a close-spelling suggestion). Nothing here does I/O; `pipeline.validate` checks values and
`pipeline.specload` imports a spec file.

A minimal spec file::

    from pipeline.spec import Image, Spec

    spec = Spec(name="web", images=(Image(name="web", repository="acme/web"),))

Credentials are never values in the spec: a registry names the environment variables that hold
them, and the signing policy names the variable that holds the cosign key reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

# The built-in registry: a TLS + password registry the tool starts on loopback by itself. A spec
# that names no registry gets it; PIPELINE_REGISTRY=host:port (or --registry) overrides any host.
LOCAL_REGISTRY = "local"

KNOWN_PLATFORMS = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
)
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
SCAN_FORMATS = ("json", "sarif", "cyclonedx")
ATTESTATIONS = ("cyclonedx", "vuln", "provenance")
PREFLIGHT_CHECKS = (
    "dockerignore",
    "non_root_user",
    "healthcheck",
    "no_latest_base",
    "base_pinned_by_digest",
    "no_secret_args",
)

Level = Literal["error", "warning", "off"]
Trigger = Literal["push", "tag", "pull_request", "dispatch"]


def _frozen_map(value: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, kw_only=True)
class Registry:
    """Where images are pushed. `host` is `host[:port]` without a scheme; `local` is built in."""

    host: str = LOCAL_REGISTRY
    username_env: str | None = None
    password_env: str | None = None
    # HTTP/TLS details for registries on this machine (CA file for self-signed TLS).
    ca_file: str | None = None


@dataclass(frozen=True, kw_only=True)
class BuildSecret:
    """A BuildKit secret (`--secret id=ID,env=ENV`): mounted at build time, never in a layer."""

    id: str
    env: str


@dataclass(frozen=True, kw_only=True)
class SemverTag:
    """A tag from the release version: {{version}} {{major}} {{minor}} {{patch}} {{raw}}."""

    pattern: str = "{{version}}"


@dataclass(frozen=True, kw_only=True)
class ShaTag:
    """`sha-<hex>` from the commit; `length` 4..40 (`format="long"` means 40)."""

    prefix: str = "sha-"
    format: Literal["short", "long"] = "short"
    length: int = 7


@dataclass(frozen=True, kw_only=True)
class RawTag:
    """A fixed tag, published when `enable` holds: always, on the default branch or on a release."""

    value: str
    enable: Literal["always", "default_branch", "release"] = "always"


@dataclass(frozen=True, kw_only=True)
class BranchTag:
    """The sanitised branch name on a branch push."""


@dataclass(frozen=True, kw_only=True)
class PullRequestTag:
    """`pr-<N>` for a pull or merge request."""

    prefix: str = "pr-"


TagRule = SemverTag | ShaTag | RawTag | BranchTag | PullRequestTag


@dataclass(frozen=True, kw_only=True)
class TagPolicy:
    """Which tags a context publishes. `rules=None` is the default policy (see `pipeline.tags`).

    `release_tag` is the git tag pattern of a release: `{{version}}` stands for a semver version
    (`v{{version}}` accepts `v1.2.3`; a bare `1.2.3` is accepted too).
    """

    rules: tuple[TagRule, ...] | None = None
    release_tag: str = "v{{version}}"
    prefix: str = ""
    suffix: str = ""
    latest: Literal["auto", "true", "false"] = "auto"


@dataclass(frozen=True, kw_only=True)
class Image:
    """One image: built for every platform into a single OCI index."""

    name: str
    repository: str  # path inside the registry, e.g. "acme/web"
    context: str = "."  # relative to the spec file's directory
    dockerfile: str = "Dockerfile"  # relative to `context`
    target: str | None = None
    # A Dockerfile stage that runs the image's own tests; built for the native platform first.
    test_target: str | None = None
    # The build argument that names the base image. When the Dockerfile's default base cannot be
    # pulled (offline machines) the built-in local base is passed in it; PIPELINE_BASE_IMAGE wins.
    base_image_arg: str | None = None
    build_args: Mapping[str, str] = field(default_factory=_frozen_map)
    secrets: tuple[BuildSecret, ...] = ()
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
    description: str = ""
    licenses: str = ""
    # A command (argv) run in a container of the built image on every platform as a smoke test.
    # It runs as given: its first word replaces the image's ENTRYPOINT.
    smoke_test: tuple[str, ...] = ()
    # The git tag that releases this image alone (a monorepo's `api/v{{version}}`); None: the
    # spec's `tags.release_tag` releases it with every other image that has no tag of its own.
    release_tag: str | None = None
    # Its own tag policy (rules, prefix, suffix, latest); None: the spec's `tags`.
    tags: TagPolicy | None = None


@dataclass(frozen=True, kw_only=True)
class ScanPolicy:
    """The Trivy gate: findings at these severities fail the release."""

    fail_on: tuple[str, ...] = ("CRITICAL", "HIGH")
    ignore_unfixed: bool = True
    ignore_file: str | None = None  # relative to the spec file's directory
    formats: tuple[str, ...] = SCAN_FORMATS
    timeout_seconds: int = 600
    # An OCI mirror of the Trivy DB (`--db-repository`); PIPELINE_TRIVY_DB_REPOSITORY wins.
    db_repository: str | None = None


@dataclass(frozen=True, kw_only=True)
class KeylessIdentity:
    """Who must have signed, keyless (Sigstore): the OIDC issuer and the certificate's identity.

    Either a `subject` (or `subject_regexp`), or a CI workload: `ci="github"` or `ci="gitlab"`
    with the `repository` and the `workflow` file. The identity is then the workflow's URL at the
    release's ref (GitHub: `https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/
    v1.2.3`; GitLab: `https://gitlab.com/GROUP/PROJECT//.gitlab-ci.yml@refs/tags/v1.2.3`), which
    Fulcio builds from the token's repository, workflow and ref claims: a version is checked
    against exactly its own tag, anything else against `ref_regexp`.
    """

    issuer: str
    subject: str | None = None
    subject_regexp: str | None = None
    ci: Literal["github", "gitlab"] | None = None
    server: str | None = None  # https://github.com or https://gitlab.com when None
    repository: str | None = None  # OWNER/REPO, GROUP/PROJECT
    workflow: str | None = None  # .github/workflows/release.yml, .gitlab-ci.yml
    ref_regexp: str = "refs/tags/.+"  # the refs allowed to sign a release


@dataclass(frozen=True, kw_only=True)
class SignPolicy:
    """cosign signing. Key mode reads the key reference from `key_env` (a path, env://, kms…)
    and its password from COSIGN_PASSWORD; keyless mode uses an OIDC identity instead."""

    key_env: str = "COSIGN_KEY"
    public_key_env: str = "COSIGN_PUBLIC_KEY"
    keyless: KeylessIdentity | None = None
    attestations: tuple[str, ...] = ATTESTATIONS
    # Rekor: upload and require the entries. Keep it on for keyless signing with the public-good
    # Sigstore; a private or offline Fulcio (the test bench) runs without one.
    transparency_log: bool = False
    # Keyless: the Fulcio to get certificates from (None: the public-good one);
    # PIPELINE_FULCIO_URL wins. `certificate_transparency=False` for a Fulcio without a CT log.
    fulcio_url: str | None = None
    certificate_transparency: bool = True
    # With no key configured outside CI, generate a throwaway key pair (clearly reported).
    throwaway_key_when_unset: bool = True


@dataclass(frozen=True, kw_only=True)
class Mirror:
    """A second registry every published tag is copied to (by digest, after signing)."""

    host: str
    repository: str | None = None  # defaults to the image's repository
    username_env: str | None = None
    password_env: str | None = None


@dataclass(frozen=True, kw_only=True)
class PublishPolicy:
    mirrors: tuple[Mirror, ...] = ()
    # Reuse an already built, scanned and signed digest for the same commit (sha tag exists).
    reuse_signed_commit: bool = True


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries for registry operations: 429 (Retry-After honoured), 5xx, resets, unexpected EOF."""

    attempts: int = 5
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0


@dataclass(frozen=True, kw_only=True)
class PreflightPolicy:
    """Dockerfile and build-context checks run before any build: each is error, warning or off."""

    levels: Mapping[str, Level] = field(
        default_factory=lambda: MappingProxyType(
            {
                "dockerignore": "error",
                "non_root_user": "error",
                "healthcheck": "warning",
                "no_latest_base": "error",
                "base_pinned_by_digest": "warning",
                "no_secret_args": "error",
            }
        )
    )


@dataclass(frozen=True, kw_only=True)
class CIOptions:
    """What the generated GitHub Actions and GitLab CI definitions do."""

    triggers: tuple[Trigger, ...] = ("push", "tag", "pull_request", "dispatch")
    default_branch: str = "main"
    python_version: str = "3.11"
    # Native runner per platform (GitHub labels); when set, each platform builds on its own runner.
    github_runners: Mapping[str, str] = field(default_factory=_frozen_map)
    github_default_runner: str = "ubuntu-24.04"
    # Runner tags per platform for GitLab; when set, each platform builds on its own runner.
    gitlab_runner_tags: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # GitHub environment holding the registry and signing secrets of the release jobs (restrict
    # it to the default branch and release tags so no other ref can read them).
    release_environment: str = "release"
    # Deployment environment that gates the production promotion (protected, manual).
    production_environment: str = "production"
    production_tag: str = "production"
    # Names of CI secrets/variables holding registry credentials for the generated files.
    registry_username_secret: str = "REGISTRY_USERNAME"
    registry_password_secret: str = "REGISTRY_PASSWORD"
    cosign_key_secret: str = "COSIGN_KEY"
    cosign_password_secret: str = "COSIGN_PASSWORD"
    cosign_public_key_variable: str = "COSIGN_PUBLIC_KEY"
    # The job image, by digest (`repo@sha256:…`): the runner image this tool releases with its
    # own pipeline (images/runner: Python 3.11, nox and the tool from pipeline.lock, docker CLI
    # and buildx, cosign, Trivy, QEMU). GitLab jobs run in it ($PIPELINE_JOB_IMAGE, set as a
    # CI/CD variable when None here); GitHub jobs too when `github_job_container` is set.
    job_image: str | None = None
    github_job_container: bool = False
    # The docker-in-docker service of GitLab build jobs, by digest ($PIPELINE_DIND_IMAGE when
    # None; empty: no service, for runners with a dockerd of their own). It must run dockerd
    # with the containerd image store (multi-platform OCI export with buildx's docker driver)
    # and register QEMU's binfmt handlers: images/dind is such an image.
    gitlab_dind_image: str | None = None
    # GitLab environment whose scoped variables hold the signing key (a file-type COSIGN_KEY)
    # and its password: only the sign job names it, so no other job sees them.
    signing_environment: str = "signing"
    # GitHub's attest-build-provenance on each index digest (SLSA provenance in the attestations
    # API and the registry), in a job of its own with `id-token` and `attestations: write`.
    attest_provenance: bool = False
    # The cosign release the GitHub cosign-installer step installs (v2.6.0 or later: the
    # installer's own floor).
    cosign_release: str = "v2.6.4"


@dataclass(frozen=True, kw_only=True)
class Builder:
    """Where one platform builds natively: a Docker host, or a BuildKit daemon.

    `endpoint` is a docker context's name, `tcp://host:2376` (TLS with the three files below),
    `ssh://user@host`, or `unix:///path`; with `driver="remote"` it is a BuildKit daemon's
    address (`tcp://host:1234`, `unix:///run/buildkit/buildkitd.sock`), reached through buildx's
    remote driver. The files are relative to the spec file's folder; a client key is a path,
    never a value.
    """

    endpoint: str
    driver: Literal["docker", "remote"] = "docker"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """BuildKit's layer cache between releases; never the release repository.

    - `auto`: GitHub's cache service (`type=gha`) on GitHub Actions when its runtime variables are
      there, else none but the builder's own;
    - `registry`: `ref` is a repository of its own (`host/cache/app`); each image and platform
      gets a tag there;
    - `local`: `directory` (relative to the spec file's folder) keeps one folder per image;
    - `gha`: GitHub's cache service, one scope per image and platform;
    - `none`: only what the builder keeps by itself.
    PIPELINE_BUILD_CACHE overrides it: `none`, `gha`, `local:DIR` or `registry:HOST/REPO`.
    """

    type: Literal["auto", "none", "registry", "local", "gha"] = "auto"
    ref: str | None = None
    directory: str | None = None
    mode: Literal["min", "max"] = "max"


@dataclass(frozen=True, kw_only=True)
class BuildPolicy:
    """How the images of a release are built."""

    # Images in flight at once; never more than the machine's cores (0: one per core).
    max_parallel: int = 0
    # A native builder per platform; a platform not named builds on this machine's docker.
    builders: Mapping[str, Builder] = field(default_factory=lambda: MappingProxyType({}))
    cache: CachePolicy = field(default_factory=CachePolicy)
    # Reuse the last signed release of an image whose inputs are unchanged (context files after
    # .dockerignore, Dockerfile, build args, base digests, platforms, target): re-signed for the
    # new version and re-tagged, not rebuilt.
    reuse_unchanged: bool = True


@dataclass(frozen=True, kw_only=True)
class Spec:
    name: str
    images: tuple[Image, ...]
    registry: Registry = field(default_factory=Registry)
    build: BuildPolicy = field(default_factory=BuildPolicy)
    tags: TagPolicy = field(default_factory=TagPolicy)
    scan: ScanPolicy = field(default_factory=ScanPolicy)
    sign: SignPolicy = field(default_factory=SignPolicy)
    publish: PublishPolicy = field(default_factory=PublishPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    preflight: PreflightPolicy = field(default_factory=PreflightPolicy)
    ci: CIOptions = field(default_factory=CIOptions)
    url: str = ""  # project home page, for the org.opencontainers.image.url label
