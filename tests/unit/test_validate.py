"""Spec validation: every mistake is one exact line, and `pipeline tags` exits 2 with it.

Each case writes a spec file into tmp_path, loads it (specload -> validate) for the exact message,
then runs `pipeline.cli.main(["tags", "--spec", FILE])` for exit code 2, the same single line on
stderr and no traceback. Validation fails before any git access, so no process is started.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.errors import SpecError
from pipeline.spec import (
    BuildSecret,
    CIOptions,
    Image,
    KeylessIdentity,
    Mirror,
    PreflightPolicy,
    PublishPolicy,
    RawTag,
    Registry,
    RetryPolicy,
    ScanPolicy,
    SemverTag,
    ShaTag,
    SignPolicy,
    Spec,
    TagPolicy,
)
from pipeline.specload import load_spec
from pipeline.validate import check_platform_arguments, check_types, validate

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (
    "ARG BASE_IMAGE=scratch\nFROM ${BASE_IMAGE} AS base\nFROM base AS test\nFROM base AS runtime\n"
)
PLATFORMS = (
    "linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/386, linux/ppc64le, "
    "linux/s390x, linux/riscv64"
)
REPO_WHAT = "a repository path (lowercase path components like 'acme/web', no host or scheme)"
HOST_WHAT = "a registry host (host[:port] without scheme or path, or 'local')"
ENV_WHAT = "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
KEYLESS = "KeylessIdentity(issuer='https://token.actions.githubusercontent.com'"


@dataclass(frozen=True)
class Case:
    id: str
    message: str  # {base} = the spec file's folder, {file} = the spec file
    image: str = ""  # extra Image(...) keyword arguments, source text starting with ", "
    spec: str = ""  # extra Spec(...) keyword arguments, source text starting with ", "
    images: str = "(IMG,)"


CASES: list[Case] = [
    # platforms
    Case(
        "unknown-platform",
        "images[0].platforms[1]: 'linux/amd65' is not a platform; did you mean 'linux/amd64'?",
        image=", platforms=('linux/arm64', 'linux/amd65')",
    ),
    Case(
        "unknown-platform-no-close-spelling",
        f"images[0].platforms[0]: 'plan9/mips' is not a platform ({PLATFORMS})",
        image=", platforms=('plan9/mips',)",
    ),
    Case(
        "empty-platform-list",
        "images[0].platforms: () is not a non-empty tuple of platforms; "
        "did you mean ('linux/amd64',)?",
        image=", platforms=()",
    ),
    Case(
        "duplicate-platform",
        "images[0].platforms[1]: 'linux/amd64' is not unique (it is images[0].platforms[0] too)",
        image=", platforms=('linux/amd64', 'linux/amd64')",
    ),
    Case(
        "platforms-is-a-string",
        "images[0].platforms: 'linux/amd64' is not a tuple of strings; "
        "did you mean ('linux/amd64',)?",
        image=", platforms='linux/amd64'",
    ),
    Case(
        "platforms-is-a-list",
        "images[0].platforms: ['linux/amd64'] is not a tuple of strings; "
        "did you mean ('linux/amd64',)?",
        image=", platforms=['linux/amd64']",
    ),
    # images
    Case(
        "duplicate-image-names",
        "images[1].name: 'web' is not unique (images[0] has the same name)",
        images="(IMG, Image(name='web', repository='acme/other'))",
    ),
    Case(
        "duplicate-repositories",
        "images[1].repository: 'acme/web' is not unique (images[0] pushes there too)",
        images="(IMG, Image(name='api', repository='acme/web'))",
    ),
    Case(
        "image-name-is-an-int",
        "images[0].name: 5 is not a string; did you mean '5'?",
        images="(Image(name=5, repository='acme/web'),)",
    ),
    Case(
        "image-name-with-space",
        "images[0].name: 'my web' is not an image name (letters, digits, '.', '_', '-'; "
        "at most 64); did you mean 'my-web'?",
        images="(Image(name='my web', repository='acme/web'),)",
    ),
    Case(
        "images-not-a-tuple",
        "images: Image(...) is not a tuple of Image(...) values; did you mean (Image(...),)?",
        images="IMG",
    ),
    Case("no-images", "images: () is not a non-empty tuple of Image(...) values", images="()"),
    Case(
        "build-arg-value-is-an-int",
        "images[0].build_args['A']: 1 is not a string; did you mean '1'?",
        image=", build_args={'A': 1}",
    ),
    Case(
        "secret-env-not-a-name",
        f"images[0].secrets[0].env: '1TOKEN' is not {ENV_WHAT}",
        image=", secrets=(BuildSecret(id='npm', env='1TOKEN'),)",
    ),
    # repository names
    Case(
        "repository-uppercase",
        f"images[0].repository: 'Acme/Web' is not {REPO_WHAT}; did you mean 'acme/web'?",
        images="(Image(name='web', repository='Acme/Web'),)",
    ),
    Case(
        "repository-with-scheme",
        f"images[0].repository: 'https://ghcr.io/acme/web' is not {REPO_WHAT}; "
        "did you mean 'acme/web'?",
        images="(Image(name='web', repository='https://ghcr.io/acme/web'),)",
    ),
    Case(
        "repository-with-space",
        f"images[0].repository: 'acme/my web' is not {REPO_WHAT}; did you mean 'acme/my-web'?",
        images="(Image(name='web', repository='acme/my web'),)",
    ),
    Case(
        "repository-with-host",
        f"images[0].repository: 'ghcr.io/acme/web' is not {REPO_WHAT}; did you mean 'acme/web'?",
        images="(Image(name='web', repository='ghcr.io/acme/web'),)",
    ),
    # registry hosts
    Case(
        "registry-with-scheme",
        f"registry.host: 'https://ghcr.io' is not {HOST_WHAT}; did you mean 'ghcr.io'?",
        spec=", registry=Registry(host='https://ghcr.io')",
    ),
    Case(
        "registry-with-path",
        f"registry.host: 'ghcr.io/acme' is not {HOST_WHAT}; did you mean 'ghcr.io'?",
        spec=", registry=Registry(host='ghcr.io/acme')",
    ),
    Case(
        "registry-uppercase",
        f"registry.host: 'GHCR.io' is not {HOST_WHAT}; did you mean 'ghcr.io'?",
        spec=", registry=Registry(host='GHCR.io')",
    ),
    Case(
        "registry-with-space",
        f"registry.host: 'my registry' is not {HOST_WHAT}; did you mean 'myregistry'?",
        spec=", registry=Registry(host='my registry')",
    ),
    Case(
        "registry-env-not-a-name",
        f"registry.username_env: 'REG-USER' is not {ENV_WHAT}; did you mean 'REG_USER'?",
        spec=", registry=Registry(host='ghcr.io', username_env='REG-USER', password_env='P')",
    ),
    Case(
        "registry-username-without-password",
        "registry.password_env: None is not set while registry.username_env is; "
        "name both credential variables or neither",
        spec=", registry=Registry(host='ghcr.io', username_env='U')",
    ),
    # scan
    Case(
        "unknown-severity",
        "scan.fail_on[1]: 'HIHG' is not a severity; did you mean 'HIGH'?",
        spec=", scan=ScanPolicy(fail_on=('CRITICAL', 'HIHG'))",
    ),
    Case(
        "lowercase-severity",
        "scan.fail_on[0]: 'high' is not a severity; did you mean 'HIGH'?",
        spec=", scan=ScanPolicy(fail_on=('high',))",
    ),
    Case(
        "unknown-severity-no-close-spelling",
        "scan.fail_on[0]: 'SEVERE' is not a severity (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)",
        spec=", scan=ScanPolicy(fail_on=('SEVERE',))",
    ),
    Case(
        "unknown-scan-format",
        "scan.formats[1]: 'sarf' is not a scan format; did you mean 'sarif'?",
        spec=", scan=ScanPolicy(formats=('json', 'sarf'))",
    ),
    Case(
        "ignore-unfixed-not-bool",
        "scan.ignore_unfixed: 'yes' is not True or False",
        spec=", scan=ScanPolicy(ignore_unfixed='yes')",
    ),
    Case(
        "missing-ignore-file",
        "scan.ignore_file: '.trivyignore.yml' is not a file in {base}; "
        "did you mean '.trivyignore.yaml'?",
        spec=", scan=ScanPolicy(ignore_file='.trivyignore.yml')",
    ),
    Case(
        "db-repository-without-host",
        "scan.db_repository: 'aquasec/trivy-db' is not a Trivy DB repository with its host "
        "(host[:port]/repository[:tag])",
        spec=", scan=ScanPolicy(db_repository='aquasec/trivy-db')",
    ),
    # tag policy
    Case(
        "unknown-placeholder",
        "tags.rules[0].pattern: '{{majr}}' is not a placeholder; did you mean '{{major}}'?",
        spec=", tags=TagPolicy(rules=(SemverTag(pattern='{{majr}}.{{minor}}'),))",
    ),
    Case(
        "pattern-without-placeholder",
        "tags.rules[0].pattern: 'stable' is not a tag pattern: it has no placeholder "
        "(a fixed tag is a RawTag); did you mean RawTag(value='stable')?",
        spec=", tags=TagPolicy(rules=(SemverTag(pattern='stable'),))",
    ),
    Case(
        "pattern-single-braces",
        "tags.rules[0].pattern: 'v{version}' is not a tag pattern (placeholders like "
        "{{version}} and [A-Za-z0-9_.-]); did you mean 'v{{version}}'?",
        spec=", tags=TagPolicy(rules=(SemverTag(pattern='v{version}'),))",
    ),
    Case(
        "sha-length-too-short",
        "tags.rules[0].length: 3 is not a SHA length (4..40); did you mean 4?",
        spec=", tags=TagPolicy(rules=(ShaTag(length=3),))",
    ),
    Case(
        "sha-length-too-long",
        "tags.rules[0].length: 41 is not a SHA length (4..40); did you mean 40?",
        spec=", tags=TagPolicy(rules=(ShaTag(length=41),))",
    ),
    Case(
        "sha-long-with-length",
        "tags.rules[0].length: 12 is not used with format='long' (always 40 characters); "
        "did you mean format='short'?",
        spec=", tags=TagPolicy(rules=(ShaTag(format='long', length=12),))",
    ),
    Case(
        "sha-unknown-format",
        "tags.rules[0].format: 'full' is not a SHA format (short, long)",
        spec=", tags=TagPolicy(rules=(ShaTag(format='full'),))",
    ),
    Case(
        "raw-tag-empty",
        "tags.rules[0].value: '' is not a tag (a RawTag needs a non-empty value)",
        spec=", tags=TagPolicy(rules=(RawTag(value=''),))",
    ),
    Case(
        "raw-tag-invalid",
        "tags.rules[0].value: 'my tag' is not a tag ([A-Za-z0-9_] then up to 127 of "
        "[A-Za-z0-9_.-]); did you mean 'my-tag'?",
        spec=", tags=TagPolicy(rules=(RawTag(value='my tag'),))",
    ),
    Case(
        "raw-tag-unknown-enable",
        "tags.rules[0].enable: 'main' is not an enable condition (always, default_branch, release)",
        spec=", tags=TagPolicy(rules=(RawTag(value='edge', enable='main'),))",
    ),
    Case(
        "release-tag-without-version",
        "tags.release_tag: 'v' is not a release tag pattern with {{version}} exactly once; "
        "did you mean 'v{{version}}'?",
        spec=", tags=TagPolicy(release_tag='v')",
    ),
    Case(
        "release-tag-with-major",
        "tags.release_tag: 'v{{major}}.{{minor}}.{{patch}}' is not a release tag pattern with "
        "{{version}} exactly once; did you mean 'v{{version}}'?",
        spec=", tags=TagPolicy(release_tag='v{{major}}.{{minor}}.{{patch}}')",
    ),
    Case(
        "release-tag-unknown-placeholder",
        "tags.release_tag: '{{versoin}}' is not a placeholder; did you mean '{{version}}'?",
        spec=", tags=TagPolicy(release_tag='v{{versoin}}')",
    ),
    Case(
        "empty-rules",
        "tags.rules: () is not a non-empty tuple of tag rules; did you mean None (the default)?",
        spec=", tags=TagPolicy(rules=())",
    ),
    Case(
        "rule-is-a-string",
        "tags.rules[0]: 'latest' is not one of the tag rules (SemverTag(...), ShaTag(...), "
        "RawTag(...), BranchTag(...), PullRequestTag(...))",
        spec=", tags=TagPolicy(rules=('latest',))",
    ),
    Case(
        "latest-unknown",
        "tags.latest: 'yes' is not a latest setting (auto, true, false)",
        spec=", tags=TagPolicy(latest='yes')",
    ),
    Case(
        "latest-is-a-bool",
        "tags.latest: True is not a latest setting; did you mean 'true'?",
        spec=", tags=TagPolicy(latest=True)",
    ),
    Case(
        "tag-prefix-invalid",
        "tags.prefix: 'web/' is not a tag prefix ([A-Za-z0-9_.-], not starting with '.' or '-'); "
        "did you mean 'web-'?",
        spec=", tags=TagPolicy(prefix='web/')",
    ),
    # build context and Dockerfile
    Case(
        "missing-context",
        "images[0].context: 'sr' is not a directory (relative to {base}); did you mean 'src'?",
        image=", context='sr'",
    ),
    Case(
        "missing-dockerfile",
        "images[0].dockerfile: 'Dockerfil' is not a file in {base}; did you mean 'Dockerfile'?",
        image=", dockerfile='Dockerfil'",
    ),
    Case(
        "missing-dockerfile-in-context",
        "images[0].dockerfile: 'Containerfile' is not a file in {base}/src; "
        "did you mean 'Dockerfile'?",
        image=", context='src', dockerfile='Containerfile'",
    ),
    Case(
        "unknown-target-stage",
        "images[0].target: 'runtme' is not a stage of {base}/Dockerfile; did you mean 'runtime'?",
        image=", target='runtme'",
    ),
    Case(
        "test-target-equals-target",
        "images[0].test_target: 'runtime' is not a test stage: it is images[0].target itself "
        "(name the stage that runs the tests)",
        image=", target='runtime', test_target='runtime'",
    ),
    # signing
    Case(
        "unknown-attestation",
        "sign.attestations[1]: 'spdx' is not an attestation (cyclonedx, vuln, provenance)",
        spec=", sign=SignPolicy(attestations=('cyclonedx', 'spdx'))",
    ),
    Case(
        "keyless-ci-without-workflow",
        "sign.keyless.workflow: None is not set with sign.keyless.ci='github' (the workflow "
        "that signs releases)",
        spec=f", sign=SignPolicy(keyless={KEYLESS}, ci='github', repository='acme/web'))",
    ),
    Case(
        "keyless-ci-with-a-subject",
        "sign.keyless.subject: 'x' is not set with sign.keyless.ci (the identity is the github "
        "workflow's URL)",
        spec=f", sign=SignPolicy(keyless={KEYLESS}, ci='github', repository='a/b', "
        "workflow='w.yml', subject='x'))",
    ),
    Case(
        "keyless-issuer-over-plain-http",
        "sign.keyless.issuer: 'http://issuer.example' is not an OIDC issuer URL (https://…)",
        spec=", sign=SignPolicy(keyless=KeylessIdentity(issuer='http://issuer.example', "
        "subject='x'))",
    ),
    Case(
        "keyless-without-subject",
        "sign.keyless: KeylessIdentity(...) is not a complete identity: set subject or "
        "subject_regexp (exactly one), or ci with repository and workflow",
        spec=f", sign=SignPolicy(keyless={KEYLESS}), transparency_log=True)",
    ),
    Case(
        "keyless-with-both-subjects",
        "sign.keyless.subject_regexp: '^x$' is not allowed together with sign.keyless.subject; "
        "set exactly one",
        spec=f", sign=SignPolicy(keyless={KEYLESS}, subject='x', subject_regexp='^x$'))",
    ),
    Case(
        "keyless-issuer-without-scheme",
        "sign.keyless.issuer: 'token.actions.githubusercontent.com' is not an OIDC issuer URL "
        "(https://…); did you mean 'https://token.actions.githubusercontent.com'?",
        spec=", sign=SignPolicy(keyless=KeylessIdentity("
        "issuer='token.actions.githubusercontent.com', subject='x'), transparency_log=True)",
    ),
    Case(
        "keyless-is-a-string",
        "sign.keyless: 'https://x' is not a KeylessIdentity(...) or None",
        spec=", sign=SignPolicy(keyless='https://x')",
    ),
    # preflight
    Case(
        "unknown-preflight-check",
        "preflight.levels['dockerignor']: 'dockerignor' is not a preflight check; "
        "did you mean 'dockerignore'?",
        spec=", preflight=PreflightPolicy(levels={'dockerignor': 'error'})",
    ),
    Case(
        "unknown-preflight-level",
        "preflight.levels['healthcheck']: 'warn' is not a level; did you mean 'warning'?",
        spec=", preflight=PreflightPolicy(levels={'healthcheck': 'warn'})",
    ),
    # CI options
    Case(
        "runner-for-a-platform-no-image-builds",
        "ci.github_runners['linux/arm64/v8']: 'linux/arm64/v8' is not a platform any image "
        "builds; did you mean 'linux/arm64'?",
        spec=", ci=CIOptions(github_runners={'linux/arm64/v8': 'ubuntu-24.04-arm'})",
    ),
    Case(
        "gitlab-runner-for-a-platform-no-image-builds",
        "ci.gitlab_runner_tags['linux/s390x']: 'linux/s390x' is not a platform any image builds "
        "(linux/amd64)",
        image=", platforms=('linux/amd64',)",
        spec=", ci=CIOptions(gitlab_runner_tags={'linux/s390x': ('s390x',)})",
    ),
    Case(
        "unknown-trigger",
        "ci.triggers[1]: 'tags' is not a trigger; did you mean 'tag'?",
        spec=", ci=CIOptions(triggers=('push', 'tags'))",
    ),
    Case(
        "production-tag-is-a-version",
        "ci.production_tag: '1.0.0' is not a floating tag of its own (versions, sha tags and "
        "latest are managed by the policy); did you mean 'production'?",
        spec=", ci=CIOptions(production_tag='1.0.0')",
    ),
    # retry
    Case(
        "retry-attempts-zero",
        "retry.attempts: 0 is not a number of attempts (at least 1); did you mean 1?",
        spec=", retry=RetryPolicy(attempts=0)",
    ),
    Case(
        "retry-attempts-a-string",
        "retry.attempts: '3' is not an integer; did you mean 3?",
        spec=", retry=RetryPolicy(attempts='3')",
    ),
    Case(
        "retry-backoff-max-below-initial",
        "retry.max_backoff_seconds: 1.0 is not at least retry.initial_backoff_seconds (2.0)",
        spec=", retry=RetryPolicy(initial_backoff_seconds=2.0, max_backoff_seconds=1.0)",
    ),
    # the base image argument must be one the Dockerfile declares
    Case(
        "base-image-arg-not-declared",
        "images[0].base_image_arg: 'BASE_IMAGES' is not a build argument {base}/Dockerfile "
        "declares; did you mean 'BASE_IMAGE'?",
        image=", base_image_arg='BASE_IMAGES'",
    ),
    Case(
        "base-image-arg-nothing-close",
        "images[0].base_image_arg: 'BASE' is not a build argument {base}/Dockerfile declares "
        "(BASE_IMAGE)",
        image=", base_image_arg='BASE'",
    ),
    # project and publishing
    Case(
        "url-without-scheme",
        "url: 'example.com' is not an http(s) URL; did you mean 'https://example.com'?",
        spec=", url='example.com'",
    ),
    Case(
        "mirror-is-the-registry",
        "publish.mirrors[0].host: 'local' is not a second registry (it is registry.host)",
        spec=", publish=PublishPolicy(mirrors=(Mirror(host='local'),))",
    ),
    Case(
        "mirror-host-with-scheme",
        f"publish.mirrors[0].host: 'https://quay.io' is not {HOST_WHAT}; did you mean 'quay.io'?",
        spec=", publish=PublishPolicy(mirrors=(Mirror(host='https://quay.io'),))",
    ),
    # many images: per-image release tags, builders, caches
    Case(
        "image-release-tag-without-version",
        "images[0].release_tag: 'api/v' is not a release tag pattern with {{version}} exactly "
        "once; did you mean 'api/v{{version}}'?",
        image=", release_tag='api/v'",
    ),
    Case(
        "image-release-tag-is-the-spec-one",
        "images[0].release_tag: 'v{{version}}' is not a release tag of this image's own (it is "
        "tags.release_tag, which releases every image without one; leave it None); did you mean "
        "None?",
        image=", release_tag='v{{version}}'",
    ),
    Case(
        "image-release-tag-without-prefix",
        "images[0].release_tag: '{{version}}-web' is not a release tag with a prefix of its own "
        "before {{version}} (like 'api/v{{version}}'), so a tag names one image; did you mean "
        "'web/v{{version}}'?",
        image=", release_tag='{{version}}-web'",
    ),
    Case(
        "image-release-tags-not-unique",
        "images[1].release_tag: 'svc/v{{version}}' is not unique (images[0] has the same "
        "release_tag)",
        images="(Image(name='web', repository='acme/web', release_tag='svc/v{{version}}'), "
        "Image(name='api', repository='acme/api', release_tag='svc/v{{version}}'))",
    ),
    Case(
        "image-tag-policy-prefix",
        "images[0].tags.prefix: '-x' is not a tag prefix ([A-Za-z0-9_.-], not starting with '.' "
        "or '-'); did you mean 'x'?",
        image=", tags=TagPolicy(prefix='-x')",
    ),
    Case(
        "max-parallel-negative",
        "build.max_parallel: -1 is not 0 (one per core) or more; did you mean 0?",
        spec=", build=BuildPolicy(max_parallel=-1)",
    ),
    Case(
        "builder-for-a-platform-not-built",
        "build.builders['linux/s390x']: 'linux/s390x' is not a platform any image builds "
        "(linux/amd64, linux/arm64)",
        spec=", build=BuildPolicy(builders={'linux/s390x': Builder(endpoint='tcp://h:2376')})",
    ),
    Case(
        "builder-endpoint-scheme",
        "build.builders['linux/arm64'].endpoint: 'http://h:2376' is not a docker endpoint "
        "(tcp://, ssh://, unix://) or a docker context's name",
        spec=", build=BuildPolicy(builders={'linux/arm64': Builder(endpoint='http://h:2376')})",
    ),
    Case(
        "remote-builder-over-ssh",
        "build.builders['linux/arm64'].endpoint: 'ssh://u@h' is not a BuildKit address for the "
        "remote driver (tcp://host:port or unix:///path)",
        spec=", build=BuildPolicy(builders={'linux/arm64': "
        "Builder(endpoint='ssh://u@h', driver='remote')})",
    ),
    Case(
        "builder-ca-file-missing",
        "build.builders['linux/arm64'].ca_file: 'tls/ca.pem' is not a file (relative to {base})",
        spec=", build=BuildPolicy(builders={'linux/arm64': "
        "Builder(endpoint='tcp://h:2376', ca_file='tls/ca.pem')})",
    ),
    Case(
        "builder-cert-without-key",
        "build.builders['linux/arm64'].key_file: None is not set with the other half of the "
        "client certificate",
        spec=", build=BuildPolicy(builders={'linux/arm64': "
        "Builder(endpoint='tcp://h:2376', cert_file='Dockerfile')})",
    ),
    Case(
        "builder-driver-unknown",
        "build.builders['linux/arm64'].driver: 'kubernetes' is not one of 'docker', 'remote'",
        spec=", build=BuildPolicy(builders={'linux/arm64': "
        "Builder(endpoint='tcp://h:2376', driver='kubernetes')})",
    ),
    Case(
        "registry-cache-without-ref",
        "build.cache.ref: None is not a cache repository (host/path) for type='registry'",
        spec=", build=BuildPolicy(cache=CachePolicy(type='registry'))",
    ),
    Case(
        "registry-cache-in-the-release-repository",
        "build.cache.ref: 'reg.example.com/acme/web' is not a repository of its own (not a "
        "release repository: the cache never sits beside released images)",
        spec=", build=BuildPolicy(cache=CachePolicy(type='registry', "
        "ref='reg.example.com/acme/web'))",
    ),
    Case(
        "local-cache-without-directory",
        "build.cache.directory: None is not a directory for type='local'",
        spec=", build=BuildPolicy(cache=CachePolicy(type='local'))",
    ),
    Case(
        "cache-ref-for-gha",
        "build.cache.ref: 'r.io/c' is not unset for type='gha' (only 'registry' takes a ref)",
        spec=", build=BuildPolicy(cache=CachePolicy(type='gha', ref='r.io/c'))",
    ),
    # unknown keywords and missing fields: turned into one line by specload
    Case(
        "unknown-keyword",
        "{file}:2: Image() has no field 'platfroms'; did you mean 'platforms'?",
        image=", platfroms=('linux/amd64',)",
    ),
    Case(
        "unknown-keyword-in-policy",
        "{file}:4: ScanPolicy() has no field 'fail_onn'; did you mean 'fail_on'?",
        spec=", scan=ScanPolicy(fail_onn=('HIGH',))",
    ),
    Case(
        "missing-required-keyword",
        "{file}:4: Image() needs 'repository'",
        images="(Image(name='api'),)",
    ),
]


def _write(folder: Path, case: Case) -> Path:
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "src").mkdir()
    (folder / "src" / "Dockerfile").write_text(DOCKERFILE)
    (folder / ".trivyignore.yaml").write_text("vulnerabilities: []\n")
    source = (
        "from pipeline.spec import *  # noqa: F403\n"
        "IMG = Image(\n"
        f"    name='web', repository='acme/web'{case.image})\n"
        f"spec = Spec(name='web', images={case.images}{case.spec})\n"
    )
    path = folder / "release.py"
    path.write_text(source)
    return path


def test_every_rule_has_a_case() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_message_and_exit_code(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path.resolve()
    path = _write(folder, case)
    expected = case.message.replace("{base}", str(folder)).replace("{file}", str(path))

    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == expected

    assert cli.main(["tags", "--spec", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {expected}\n"
    assert "Traceback" not in err


def test_a_full_valid_spec_passes(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / ".trivyignore.yaml").write_text("")
    spec = Spec(
        name="acme",
        url="https://example.com/acme",
        images=(
            Image(
                name="web",
                repository="acme/web",
                context="web",
                target="runtime",
                test_target="test",
                base_image_arg="BASE_IMAGE",
                build_args={"PY": "3.11"},
                secrets=(BuildSecret(id="npm", env="NPM_TOKEN"),),
                platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"),
                smoke_test=("true",),
            ),
            Image(name="api", repository="acme/api", platforms=("linux/amd64",)),
        ),
        registry=Registry(host="registry.example.com:5000", username_env="U", password_env="P"),
        tags=TagPolicy(
            rules=(
                SemverTag(pattern="v{{version}}"),
                SemverTag(pattern="{{ major }}.{{minor}}"),
                ShaTag(format="long"),
                ShaTag(prefix="git-", length=12),
                RawTag(value="edge", enable="default_branch"),
            ),
            release_tag="web/v{{version}}",
            prefix="x_",
            suffix="-slim",
            latest="false",
        ),
        scan=ScanPolicy(
            fail_on=("CRITICAL",),
            ignore_file=".trivyignore.yaml",
            db_repository="127.0.0.1:5000/trivy/db:2",
        ),
        sign=SignPolicy(
            keyless=KeylessIdentity(
                issuer="https://token.actions.githubusercontent.com",
                subject_regexp=r"^https://github\.com/acme/.*$",
            ),
            transparency_log=True,
        ),
        publish=PublishPolicy(mirrors=(Mirror(host="quay.io", repository="acme/mirror"),)),
        retry=RetryPolicy(attempts=1, initial_backoff_seconds=0, max_backoff_seconds=0),
        preflight=PreflightPolicy(levels={"healthcheck": "off"}),
        ci=CIOptions(
            github_runners={"linux/arm64": "ubuntu-24.04-arm"},
            gitlab_runner_tags={"linux/arm64": ("arm64", "docker")},
            default_branch="release/2.x",
        ),
    )
    validate(spec, tmp_path)


def test_dockerfile_with_arg_stage_names_is_not_second_guessed(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("ARG V=a\nFROM scratch AS ${V}\n")
    spec = Spec(name="x", images=(Image(name="x", repository="x", target="anything"),))
    validate(spec, tmp_path)


def test_dockerfile_without_named_stages(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    spec = Spec(name="x", images=(Image(name="x", repository="x", target="runtime"),))
    with pytest.raises(SpecError) as info:
        validate(spec, tmp_path)
    assert str(info.value) == (
        f"images[0].target: 'runtime' is not a stage of {tmp_path / 'Dockerfile'} "
        "(it names no stage with FROM … AS)"
    )


def test_not_a_spec_object() -> None:
    with pytest.raises(SpecError) as info:
        check_types("nope")  # type: ignore[arg-type]
    assert str(info.value) == "spec: 'nope' is not a Spec(...)"


def test_sample_app_spec_has_the_right_types() -> None:
    """The project's own example passes the type pass (its files are checked where they live)."""
    path = ROOT / "sample-app" / "release.py"
    loader = importlib.util.spec_from_file_location("_sample_release", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    check_types(module.spec)


def test_platform_arguments_are_checked_before_anything_runs() -> None:
    check_platform_arguments(("linux/arm64",), "--platform", at_most=1)
    with pytest.raises(SpecError) as unknown:
        check_platform_arguments(("linux/amd65",), "--platform", at_most=1)
    assert unknown.value.message.startswith("--platform: 'linux/amd65'")
    assert "linux/amd64" in unknown.value.message
    with pytest.raises(SpecError) as two:
        check_platform_arguments(("linux/amd64", "linux/arm64"), "--platform", at_most=1)
    assert "exactly one platform" in two.value.message


def test_a_dotted_group_under_a_named_host_is_a_path(tmp_path: Path) -> None:
    """Under the spec's registry or a mirror's host, `acme.io/web` is a GitLab group's path;
    under `local`, whose host a run may replace, it still reads as a host."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    image = Image(name="web", repository="acme.io/web")
    mirror = Mirror(host="registry.gitlab.com", repository="acme.io/mirror")
    validate(
        Spec(
            name="app",
            images=(image,),
            registry=Registry(host="registry.gitlab.com"),
            publish=PublishPolicy(mirrors=(mirror,)),
        ),
        tmp_path,
    )
    with pytest.raises(SpecError, match=r"images\[0\]\.repository"):
        validate(Spec(name="app", images=(image,)), tmp_path)
