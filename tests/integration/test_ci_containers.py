"""The generated GitLab pipeline run as a GitLab runner with the docker executor runs it: every
job in a container of the job image (released first by the project's own pipeline), the build
jobs next to a privileged docker-in-docker service made from Debian's docker packages, chosen
through the generated PIPELINE_DIND_IMAGE variable; gitlab-ci-local's docker executor, images
served from a registry on the host's outward address (containers cannot reach the host's
loopback, and inside dind 172.17.0.1 is dind's own bridge).

Proven here:
- a tag pipeline publishes the same per-platform digests as a local release of the commit, the
  signing key reaching only the sign job (a file variable scoped to the `signing` environment);
- a merge-request pipeline builds and scans and pushes nothing;
- the native-runner variant (preflight, one build job per platform, merge) publishes the same
  per-platform digests as the QEMU build.

Then the generated GitHub workflow, its jobs in containers of the same job image
(`ci.github_job_container`) as GitHub's runner runs them (tests/support/github_container.py):
each `runs-on` label a runner machine of its own, a dockerd that is not the host's, the builder
made as docker/setup-buildx-action makes it. Its tag run and its native-runner fan-out publish
the same per-platform digests again. The module's folder keeps the figures after the run:
figures.json (each run's time and per-platform digests) and job-image.json (its reference,
size per platform and release report).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.adapters.registry import RegistryClient
from pipeline.adapters.runner import Runner
from pipeline.emit import github, gitlab
from pipeline.emit.yamldump import dump
from pipeline.oci import platform_digests
from pipeline.sandbox.local import Provisioned, provision
from pipeline.sandbox.registry import RegistryServer, untrust_in_docker
from pipeline.specload import load_spec
from tests.support.bench import ROOT, Bench
from tests.support.ci_containers import (
    JobImage,
    bridge_registry,
    build_tool_wheel,
    buildkit_image,
    dind_image,
    helper_image,
    push_by_digest,
    pushed_sizes,
    release_job_image,
    wait_image,
)
from tests.support.github_container import ContainerRunner, RunnerMachine, runner_machines
from tests.support.github_replay import Event, with_pins
from tests.support.release_repo import ReleaseRepo, clone_project, release_tags
from tests.support.spec_variants import NATIVE

# The job image's release alone takes longer than the suite's 900 s on a cold BuildKit cache.
pytestmark = pytest.mark.timeout(3600)

GITLAB_CI_LOCAL = ROOT / "node_modules" / "gitlab-ci-local" / "dist" / "index.js"
REPOSITORY = "ci/sample-app"


@dataclass
class CI:
    registry: RegistryServer
    provisioned: Provisioned
    repo: ReleaseRepo
    job_image: JobImage
    dind: str
    work: Path
    timings: dict[str, float] = field(default_factory=dict)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)  # run -> platform -> digest

    def record(self, run: str, platforms: dict[str, str]) -> None:
        self.digests[run] = platforms
        self.save()

    def took(self, step: str, seconds: float) -> None:
        self.timings[step] = round(seconds, 1)
        self.save()

    def save(self) -> None:
        """The figures so far, kept in the module's folder after the run (no `-s` needed)."""
        figures = {"timings": self.timings, "digests": self.digests}
        (self.work / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")


def bridge_env(bench: Bench, registry: RegistryServer, provisioned: Provisioned) -> dict[str, str]:
    """A `pipeline` process against the bridge registry (the bench's signing key)."""
    return bench.env(
        **provisioned.tool_env(),
        PIPELINE_REGISTRY=registry.host,
        PIPELINE_REGISTRY_CA=str(registry.ca_file),
        PIPELINE_REGISTRY_USERNAME=registry.username or "",
        PIPELINE_REGISTRY_PASSWORD=registry.password or "",
        PIPELINE_BASE_IMAGE=provisioned.base_image or "",
        PIPELINE_TRIVY_DB_REPOSITORY=provisioned.db_repository or "",
    )


@pytest.fixture(scope="module")
def ci(bench: Bench, runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CI]:
    work = tmp_path_factory.mktemp("ci-containers")
    started = time.monotonic()
    registry = bridge_registry(work / "registry", runner)
    try:
        provisioned = provision(registry, work, runner, base=True, trivy_db=True)
        repo = clone_project(work / "project", REPOSITORY)
        wheels = build_tool_wheel(repo, work / "wheels").parent
        job_image = release_job_image(repo, wheels, bridge_env(bench, registry, provisioned))
        shutil.rmtree(repo.path / "dist", ignore_errors=True)
        shutil.rmtree(repo.path / "images" / "runner" / "wheels", ignore_errors=True)
        dind = push_by_digest(
            dind_image(runner), registry, "pipeline/dind", runner, provisioned.docker_config
        )
        ci = CI(registry, provisioned, repo, job_image, dind, work)
        ci.took("job image released", job_image.seconds)
        (work / "job-image.json").write_text(
            json.dumps(
                {
                    "reference": job_image.reference,
                    "sizes": pushed_sizes(registry, job_image.reference),
                    "release": job_image.report,
                },
                indent=2,
            )
            + "\n"
        )
        ci.took("set-up", time.monotonic() - started)
        yield ci
    finally:
        registry.stop()
        untrust_in_docker(registry)


def _gitlab_ci_local(
    ci: CI,
    bench: Bench,
    file: str,
    variables: dict[str, str],
    *,
    manual: tuple[str, ...] = (),
    concurrency: int | None = None,
) -> tuple[subprocess.CompletedProcess[str], float]:
    repo = ci.repo
    bundle = ci.provisioned.ca_bundle  # the system's CAs and the bridge registry's
    assert bundle is not None
    # The signing key as GitLab holds it: a file-type variable (its content: the PEM key; the
    # job gets a path) scoped to the environment the sign job names, its password likewise.
    scoped = {
        "COSIGN_KEY": {"type": "file", "values": {"signing": bench.cosign_key.read_text()}},
        "COSIGN_PASSWORD": {"type": "variable", "values": {"signing": bench.cosign_password}},
    }
    variables_file = ci.work / "variables.yml"
    variables_file.write_text(yaml.safe_dump(scoped))
    certs = f"pipeline-ci-certs-{os.getpid()}"
    argv = [
        "node",
        str(GITLAB_CI_LOCAL),
        "--file",
        file,
        "--no-color",
        "--privileged",  # a runner with `privileged = true`: what docker-in-docker needs
        # gitlab-ci-local reads no FF_ variables: this is the runner under the generated
        # FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR (git's modes, not `umask 0000`'s 0666).
        "--no-umask",
        "--pull-policy",
        "if-not-present",
        "--helper-image",
        helper_image(Runner(echo=False)),
        "--wait-image",
        wait_image(Runner(echo=False)),
        "--ca-file",
        str(bundle),
        "--volume",
        f"{certs}:/certs/client",  # the runner's `volumes = ["/certs/client"]` for dind TLS
        "--variables-file",  # read as $CWD/<this>, so relative to the checkout
        os.path.relpath(variables_file, repo.path),
    ]
    for job in manual:
        argv += ["--manual", job]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    common = {
        "GITLAB_CI": "true",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_URL": "https://example.com/acme/sample-app",
        "CI_REGISTRY": ci.registry.host,
        # The project's own registry path (gitlab-ci-local, with no git remote, would make it
        # `fallback.group/fallback.project`).
        "CI_REGISTRY_IMAGE": f"{ci.registry.host}/{REPOSITORY}",
        "CI_REGISTRY_USER": ci.registry.username or "",
        "CI_REGISTRY_PASSWORD": ci.registry.password or "",
        "PIPELINE_JOB_IMAGE": ci.job_image.reference,
        "PIPELINE_DIND_IMAGE": ci.dind,
        "PIPELINE_REGISTRY_CA": "/etc/ssl/certs/ca-certificates.crt",
        "PIPELINE_BASE_IMAGE": ci.provisioned.base_image or "",
        "PIPELINE_TRIVY_DB_REPOSITORY": ci.provisioned.db_repository or "",
        "PIPELINE_BINFMT": "qemu-aarch64",
        "PIPELINE_OFFLINE_FIXTURES": "1",  # the sandbox's base and DB stand in for real ones
        "COSIGN_PUBLIC_KEY": bench.cosign_pub.read_text(),
    }
    for name, value in {**common, **variables}.items():
        argv += ["--variable", f"{name}={value}"]
    env = {**os.environ, **ci.provisioned.tool_env()}
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "CI", "VIRTUAL_ENV"):
        env.pop(name, None)
    started = time.monotonic()
    try:
        result = subprocess.run(
            argv, cwd=repo.path, env=env, capture_output=True, text=True, timeout=3000, check=False
        )
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", certs], capture_output=True, check=False)
    return result, time.monotonic() - started


def _started_in(log: str) -> dict[str, str]:
    """job -> the image gitlab-ci-local started it in (from its `starting IMAGE (stage)` line)."""
    return dict(re.findall(r"^(\S+)\s+starting (\S+) \(", log, flags=re.MULTILINE))


def _tag_pipeline(tag: str) -> dict[str, str]:
    return {
        "CI_COMMIT_TAG": tag,
        "CI_COMMIT_REF_NAME": tag,
        "CI_COMMIT_BRANCH": "",
        "CI_PIPELINE_SOURCE": "push",
    }


def _platforms(ci: CI, tag: str) -> dict[str, str]:
    manifest = ci.registry.client().resolve(REPOSITORY, tag)
    assert manifest is not None, f"{REPOSITORY}:{tag} not published"
    return platform_digests(manifest.document)


TAG = "v3.1.0"
VERSION = TAG.removeprefix("v")


def _local_platforms(ci: CI, bench: Bench) -> dict[str, str]:
    """The per-platform digests of the same commit released on this machine, to the bench's
    plain registry (once per module)."""
    if "local" not in ci.digests:
        if TAG not in ci.repo.git("tag", "--list").split():
            ci.repo.tag(TAG)
        bench.release_on_plain(ci.repo.path, ci.repo.spec)
        local_index = bench.plain.client().resolve(REPOSITORY, VERSION)
        assert local_index is not None
        ci.record("local", platform_digests(local_index.document))
    return ci.digests["local"]


def _difference(ci: CI, bench: Bench, ours: dict[str, str], local: dict[str, str]) -> str:
    """What differs between the amd64 image of a CI run and of the local release: labels,
    layers and the config's other fields."""

    def image(client: RegistryClient, digest: str) -> dict[str, Any]:
        manifest = client.resolve(REPOSITORY, digest)
        assert manifest is not None
        document = manifest.document
        config = json.loads(client.get_blob(REPOSITORY, document["config"]["digest"]))
        return {
            "layers": [layer["digest"] for layer in document["layers"]],
            "labels": config.get("config", {}).get("Labels"),
            "rootfs": config.get("rootfs"),
        }

    platform = "linux/amd64"
    mine = image(ci.registry.client(), ours[platform])
    theirs = image(bench.plain.client(), local[platform])
    differing = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
    return f"CI and local images differ ({platform}): {json.dumps(differing, indent=1)}"


def _unpublish(ci: CI) -> None:
    """Delete every tag's manifest of the repository, so the next run builds again rather than
    reusing the release."""
    client = ci.registry.client()
    for digest in set(release_tags(client, REPOSITORY).values()):
        client.delete_manifest(REPOSITORY, digest)


def test_merge_request_pipeline_in_containers_pushes_nothing(ci: CI, bench: Bench) -> None:
    variables = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_COMMIT_REF_NAME": "feature",
        "CI_COMMIT_BRANCH": "feature",
        "CI_COMMIT_TAG": "",
    }
    result, seconds = _gitlab_ci_local(ci, bench, "workflows/gitlab-ci.yml", variables)
    log = result.stdout + result.stderr
    ci.took("merge-request pipeline", seconds)
    (ci.work / "merge-request-pipeline.log").write_text(log)
    assert result.returncode == 0, log[-8000:]
    assert "PASS  merge-request" in log
    assert _started_in(log) == {"merge-request": ci.job_image.reference}
    assert ci.registry.client().tags(REPOSITORY) == [], "a merge request pushes nothing"
    report = ci.repo.path / ".gitlab-ci-local" / "artifacts" / "merge-request"
    scanning = json.loads((report / "dist" / "gl-container-scanning-report.json").read_text())
    assert not scanning["scan"]["start_time"].startswith("1970")
    assert list((report / "dist" / "scan").rglob("*.cdx.json")), "the cyclonedx report"


def test_tag_pipeline_in_containers_publishes_what_a_local_release_does(
    ci: CI, bench: Bench
) -> None:
    repo = ci.repo
    repo.tag(TAG)
    result, seconds = _gitlab_ci_local(
        ci, bench, "workflows/gitlab-ci.yml", _tag_pipeline(TAG), manual=("production",)
    )
    log = result.stdout + result.stderr
    ci.took("tag pipeline", seconds)
    (ci.work / "tag-pipeline.log").write_text(log)
    assert result.returncode == 0, log[-8000:]
    jobs = ("build", "scan", "sign", "publish", "release", "production")
    for job in jobs:
        assert f"PASS  {job}" in log, log[-3000:]
    started = _started_in(log)
    assert started == dict.fromkeys(jobs, ci.job_image.reference), started
    assert f"started service image: {ci.dind}" in log
    assert log.count("started service image:") == 1, "only the build job has docker-in-docker"

    published = release_tags(ci.registry.client(), REPOSITORY)
    expected = json.loads(
        bench.pipeline("tags", "--json", "--spec", repo.spec, cwd=repo.path).stdout
    )["tags"]
    assert set(published) == {*expected, "production"}
    assert len(set(published.values())) == 1
    ci_platforms = _platforms(ci, VERSION)

    local_platforms = _local_platforms(ci, bench)
    assert ci_platforms == local_platforms, "container CI and local give the same images"
    ci.record("gitlab-containers", ci_platforms)

    # The release notes: the digests, and a verify command that works as printed.
    notes = (
        repo.path / ".gitlab-ci-local" / "artifacts" / "release" / "dist" / "release-notes.md"
    ).read_text()
    for digest in ci_platforms.values():
        assert digest in notes
    (verify_line,) = [line for line in notes.splitlines() if line.startswith("cosign verify ")]
    (ci.work / "cosign.pub").write_text(bench.cosign_pub.read_text())
    verify = subprocess.run(
        shlex.split(verify_line),
        cwd=ci.work,
        env={**os.environ, **ci.provisioned.tool_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr[-2000:]


def test_native_runner_fan_out_in_containers_gives_the_qemu_digests(ci: CI, bench: Bench) -> None:
    """Preflight, one build job per platform (each with its own dind), then the merge: the same
    commit's per-platform digests as the QEMU build above (its tags are deleted first, so the
    release is built again rather than reused)."""
    qemu = _platforms(ci, VERSION)
    _unpublish(ci)
    spec = load_spec(ci.repo.path / ci.repo.spec).spec
    native = replace(spec, **NATIVE)
    (ci.repo.path / ".git" / "info" / "exclude").write_text(".gitlab-ci-native.yml\n")
    (ci.repo.path / ".gitlab-ci-native.yml").write_text(
        dump(gitlab.pipeline(native, ci.repo.spec).to_data(), "native-runner variant")
    )
    # One job at a time: a runner gives each job its own /certs/client volume, gitlab-ci-local
    # one named volume for all, so two dind services at once overwrite each other's client
    # certificates (x509: certificate signed by unknown authority).
    result, seconds = _gitlab_ci_local(
        ci, bench, ".gitlab-ci-native.yml", _tag_pipeline(TAG), concurrency=1
    )
    log = result.stdout + result.stderr
    ci.took("native fan-out pipeline", seconds)
    assert result.returncode == 0, log[-8000:]
    for job in ("preflight", "build:linux-amd64", "build:linux-arm64", "build", "publish"):
        assert f"PASS  {job}" in log
    assert log.index("PASS  preflight") < log.index("PASS  build:linux-amd64")
    native_platforms = _platforms(ci, VERSION)
    assert native_platforms == qemu
    ci.record("gitlab-native-fan-out", native_platforms)
    print(json.dumps(ci.timings, indent=2))


# -- GitHub ---------------------------------------------------------------------------------

GITHUB_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm"]


@dataclass
class GitHubCI:
    machines: dict[str, RunnerMachine]
    buildkit: str
    work: Path


@pytest.fixture(scope="module")
def github_ci(ci: CI, bench: Bench, runner: Runner) -> Iterator[GitHubCI]:
    """A runner machine per label, each with the job image and the BuildKit image pulled."""
    started = time.monotonic()
    work = ci.work / "github"
    # The docker-container driver's image, on the bench's loopback registry (no login: as
    # moby/buildkit is public), which every runner machine's dockerd reaches.
    buildkit = push_by_digest(
        buildkit_image(runner),
        bench.plain,
        "pipeline/buildkit",
        runner,
        ci.provisioned.docker_config,
    )
    with runner_machines(
        work,
        GITHUB_LABELS,
        pull=[ci.job_image.reference, buildkit],
        docker_config=ci.provisioned.docker_config,
    ) as machines:
        # The machines' own builder (buildx's `docker` driver on the classic store) cannot
        # export a multi-platform OCI image: a build that passes used setup-buildx's builder.
        (work / "probe").mkdir(parents=True)
        (work / "probe" / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
        probe = machines[GITHUB_LABELS[0]].docker_run(
            "buildx",
            "build",
            "--builder",
            "default",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            f"type=oci,dest={work / 'probe' / 'out.tar'}",
            str(work / "probe"),
        )
        assert probe.returncode != 0, "the runner machine's default builder exported OCI"
        ci.took("github runner machines", time.monotonic() - started)
        yield GitHubCI(machines, buildkit, work)


def _github_workflow(ci: CI, **options: Any) -> dict[str, Any]:
    """The workflow of the clone's spec with every job in the job image (and `options`)."""
    spec = load_spec(ci.repo.path / ci.repo.spec).spec
    in_container = replace(
        spec.ci, job_image=ci.job_image.reference, github_job_container=True, **options
    )
    data = github.workflow(replace(spec, ci=in_container), ci.repo.spec).to_data()
    return with_pins(yaml.safe_load(dump(data, "in a container")))


def _github_runner(ci: CI, bench: Bench, github_ci: GitHubCI, name: str) -> ContainerRunner:
    return ContainerRunner(
        bench,
        ci.repo,
        ci_python=Path("/nonexistent"),  # the job image's Python runs every step
        workdir=github_ci.work / name,
        wheels=Path("/nonexistent"),
        registry=ci.registry,
        machines=github_ci.machines,
        job_image=ci.job_image.reference,
        buildkit_image=github_ci.buildkit,
        registry_ca=ci.registry.ca_file,
        # The project's address, as the spec's `url` (the local release's source label) and
        # CI_PROJECT_URL in the GitLab runs say: the image's source label is part of its digest.
        server_url="https://example.com",
        machine_variables={
            "PIPELINE_BASE_IMAGE": ci.provisioned.base_image or "",
            "PIPELINE_TRIVY_DB_REPOSITORY": ci.provisioned.db_repository or "",
            "PIPELINE_OFFLINE_FIXTURES": "1",  # the sandbox's base and DB stand in
        },
    )


def _tag_event() -> Event:
    ref = f"refs/tags/{TAG}"
    return Event("push", ref, {"ref": ref, "repository": {"default_branch": "main"}})


def test_github_tag_run_in_containers_publishes_what_a_local_release_does(
    ci: CI, bench: Bench, github_ci: GitHubCI
) -> None:
    local = _local_platforms(ci, bench)
    _unpublish(ci)
    runner = _github_runner(ci, bench, github_ci, "tag")
    workflow = _github_workflow(ci)
    # The harness keeps git's ownership rule: a job without the generated trust step cannot
    # read the commit (the failure actions/runner#2033 reports).
    checkout = workflow["jobs"]["build"]["steps"][0]
    untrusted = {
        "probe": {
            "runs-on": GITHUB_LABELS[0],
            "container": {"image": ci.job_image.reference},
            "steps": [checkout, {"run": "git rev-parse HEAD"}],
        }
    }
    with pytest.raises(AssertionError, match="dubious ownership"):
        runner.run({"jobs": untrusted}, _tag_event())
    started = time.monotonic()
    ran = runner.run(workflow, _tag_event())
    ci.took("github tag run", time.monotonic() - started)
    (github_ci.work / "tag-run.log").write_text("\n".join(runner.log))
    assert ran == ["build", "scan", "sign", "publish", "github-release", "production"]
    assert {label for _, label in runner.jobs_seen} == {GITHUB_LABELS[0]}
    published = release_tags(ci.registry.client(), REPOSITORY)
    assert {t for t, d in published.items() if d == published[VERSION]} >= {
        VERSION,
        "latest",
        "production",
    }
    github_platforms = _platforms(ci, VERSION)
    ci.record("github-containers", github_platforms)
    assert github_platforms == local, _difference(ci, bench, github_platforms, local)


def test_github_native_fan_out_in_containers_gives_the_qemu_digests(
    ci: CI, bench: Bench, github_ci: GitHubCI
) -> None:
    """Preflight, a build job per platform on its own runner machine (`ubuntu-24.04-arm` for
    arm64), the merge job, then scan, sign and publish: the QEMU build's digests again."""
    local = _local_platforms(ci, bench)
    _unpublish(ci)
    runner = _github_runner(ci, bench, github_ci, "native")
    workflow = _github_workflow(ci, github_runners=NATIVE["ci"].github_runners)
    started = time.monotonic()
    ran = runner.run(workflow, _tag_event())
    ci.took("github native fan-out run", time.monotonic() - started)
    (github_ci.work / "native-run.log").write_text("\n".join(runner.log))
    assert ran[:4] == ["preflight", "build-linux-amd64", "build-linux-arm64", "build"], ran
    seen = dict(runner.jobs_seen)
    assert seen["build-linux-arm64"] == "ubuntu-24.04-arm"
    assert seen["build-linux-amd64"] == "ubuntu-24.04"
    native_platforms = _platforms(ci, VERSION)
    ci.record("github-native-fan-out", native_platforms)
    assert native_platforms == local, _difference(ci, bench, native_platforms, local)
    print(json.dumps({"timings": ci.timings, "digests": ci.digests}, indent=2))
