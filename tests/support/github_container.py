"""GitHub's runner for jobs with `container:`, on this machine (used by
tests/integration/test_ci_containers.py).

What a hosted runner does for such a job, and how it is reproduced here:
- **the runner machine's dockerd** is not the host's: each `runs-on` label gets a second dockerd
  of its own (tests/support/dockerhost.py) with the classic image store (a daemon that cannot
  build a multi-platform OCI image with buildx's `docker` driver, so a build that does not use
  the builder setup-buildx-action made fails), and a unix socket;
- **the job container** is started on that daemon as actions/runner does: a network of its own
  (`github_network_…`), the workspace folder mounted at `/__w`, `$RUNNER_TEMP` at `/__w/_temp`,
  `HOME=/github/home`, the event at `/github/workflow/event.json`, the daemon's socket at
  `/var/run/docker.sock`, entrypoint `tail -f /dev/null`; every `run:` step is a script under
  `/__w/_temp` run with `docker exec … bash -e`, its variables passed by name (`-e NAME`);
- the workspace folder belongs to the runner's user (uid 1001), as on a hosted runner, while the
  job's steps run as root: git's `safe.directory` rule applies (actions/runner#2033);
- **`uses:` steps are JavaScript actions run inside the job container** on real GitHub, so they
  are done inside it here: checkout (`git init`, fetch of every branch and tag from the
  repository mounted read-only, `git checkout`, with the temporary HOME holding checkout's own
  safe.directory, as actions/checkout v7 does), login (`docker login --password-stdin`, which
  writes $HOME/.docker/config.json), setup-buildx (exactly the action's `docker buildx create
  --name builder-<uuid> --driver docker-container --buildkitd-flags … --use` and `docker
  buildx inspect --bootstrap`, then `docker buildx rm` in its post step); artifact steps move
  `dist/` as the host-shell replay does.

Stand-ins, each for something this offline machine cannot reach:
- moby/buildkit (the docker-container driver's image) is `buildkit_image`, built here, named
  with `--driver-opt image=…` (the action's `driver-opts`);
- the registry's CA is private: its file is mounted read-only and named by
  PIPELINE_REGISTRY_CA, and the builder gets a buildkitd.toml that trusts it (the action's
  `buildkitd-config-inline`);
- setup-qemu-action's `tonistiigi/binfmt --install` is the kernel's binfmt entry that this
  machine registered already (checked: enabled, with the F flag that containers need);
- the job image is pulled with the registry's login (a job's `container.credentials`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.emit import pins
from tests.support.dockerhost import DockerHost, start_docker_host
from tests.support.github_replay import Event, Runner

RUNNER_UID = 1001  # the hosted runner's `runner` user owns the work folder
CONTAINER_WORK = "/__w"
CONTAINER_HOME = "/github/home"
CONTAINER_WORKFLOW = "/github/workflow"
SOURCE = "/github/source"  # where the repository is mounted (the job's "origin")
MACHINE = "/etc/pipeline-machine"  # the stand-ins' files (CA, buildkitd.toml), read-only
BUILDKITD_FLAGS = (
    "--allow-insecure-entitlement security.insecure --allow-insecure-entitlement network.host"
)
BINFMT_ARM64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def setup_buildx_create(
    name: str, image: str, *, config: str | None = None, endpoint: str | None = None
) -> list[str]:
    """`docker buildx create` as docker/setup-buildx-action v4.3.0 runs it for its default
    builder (src/context.ts getCreateArgs: driver docker-container, the default buildkitd flags,
    `--use`), `image` standing in for moby/buildkit (the action's `driver-opts`), `config` for
    its `buildkitd-config-inline`, `endpoint` the temporary context it makes when the default
    context holds TLS data (src/main.ts)."""
    argv = ["docker", "buildx", "create", "--name", name, "--driver", "docker-container"]
    argv += ["--driver-opt", f"image={image}", "--buildkitd-flags", BUILDKITD_FLAGS, "--use"]
    if config is not None:
        argv += ["--config", config]
    if endpoint is not None:
        argv.append(endpoint)
    return argv


@dataclass
class RunnerMachine:
    """One runner's machine: a dockerd that is not the host's, reached by its unix socket."""

    label: str
    daemon: DockerHost
    socket: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The host's docker CLI against this machine's daemon."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DOCKER_", "PIPELINE_", "COSIGN_", "GITHUB", "GITLAB"))
        }
        return {**env, "DOCKER_HOST": f"unix://{self.socket}", **extra}

    def docker_run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: int = 900,
    ) -> subprocess.CompletedProcess[str]:
        """The host's docker CLI on this machine's socket (any DOCKER_CONFIG: no context)."""
        return subprocess.run(
            ["docker", *args],
            env=self.env(**(env or {})),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def docker(self, *args: str, env: dict[str, str] | None = None, timeout: int = 900) -> str:
        done = self.docker_run(*args, env=env, timeout=timeout)
        assert done.returncode == 0, f"docker {args[0]} on {self.label}: {done.stderr[-3000:]}"
        return done.stdout


@contextmanager
def runner_machines(
    folder: Path, labels: list[str], *, pull: list[str], docker_config: Path
) -> Iterator[dict[str, RunnerMachine]]:
    """A runner machine per `runs-on` label, each with the images of `pull` (pulled with the
    login in `docker_config`)."""
    machines: dict[str, RunnerMachine] = {}
    try:
        for index, label in enumerate(labels):
            where = folder / f"machine-{index}"
            socket = where / "docker.sock"
            host = start_docker_host(
                where,
                extra_config={"features": {"containerd-snapshotter": False}},
                unix_socket=socket,
            )
            machine = RunnerMachine(label, host, socket)
            machines[label] = machine
            for image in pull:
                machine.docker("pull", "--quiet", image, env={"DOCKER_CONFIG": str(docker_config)})
        yield machines
    finally:
        for machine in machines.values():
            machine.daemon.stop()


@dataclass
class ContainerRunner(Runner):
    """The workflow's jobs, each in a job container on its runner machine (see the module)."""

    machines: dict[str, RunnerMachine] = field(default_factory=dict)
    job_image: str = ""
    buildkit_image: str = ""
    registry_ca: Path | None = None
    machine_variables: dict[str, str] = field(default_factory=dict)
    repository_name: str = "sample-app"
    server_url: str = ""  # GITHUB_SERVER_URL when not the default one
    # Set per job by begin_job.
    job_folder: Path | None = None
    container: str = ""
    network: str = ""
    machine: RunnerMachine | None = None
    builders: list[str] = field(default_factory=list)
    jobs_seen: list[tuple[str, str]] = field(default_factory=list)  # (job, runs-on)

    # -- paths -------------------------------------------------------------------------------

    @property
    def workspace(self) -> Path:
        assert self.job_folder is not None, "no job is running"
        return self.job_folder / "work" / self.repository_name / self.repository_name

    @property
    def container_workspace(self) -> str:
        return f"{CONTAINER_WORK}/{self.repository_name}/{self.repository_name}"

    def _mounted(self, name: str) -> Path:
        assert self.job_folder is not None
        return self.job_folder / name

    # -- a job -------------------------------------------------------------------------------

    def begin_job(self, job_id: str, job: dict[str, Any], event: Event) -> None:
        assert job.get("container", {}).get("image") == self.job_image, job.get("container")
        self.machine = self.machines[job["runs-on"]]
        self.jobs_seen.append((job_id, job["runs-on"]))
        self.job_folder = self.workdir / "jobs" / f"{len(self.jobs_seen):02d}-{job_id}"
        shutil.rmtree(self.job_folder, ignore_errors=True)
        for name in ("work", "work/_temp", "home", "workflow", "machine"):
            self._mounted(name).mkdir(parents=True)
        self.workspace.mkdir(parents=True)
        for path in [self._mounted("work"), *self._mounted("work").rglob("*")]:
            os.chown(path, RUNNER_UID, RUNNER_UID)  # the runner's user made them
        (self._mounted("workflow") / "event.json").write_text(json.dumps(event.payload))
        machine_files = self._mounted("machine")
        if self.registry_ca is not None:
            shutil.copyfile(self.registry_ca, machine_files / "registry-ca.pem")
            host = self.variables()["PIPELINE_REGISTRY"]
            (machine_files / "buildkitd.toml").write_text(
                f'[registry."{host}"]\n  ca = ["{MACHINE}/registry-ca.pem"]\n'
            )
        self.network = f"github_network_{uuid.uuid4().hex}"
        self.machine.docker("network", "create", self.network)
        self.container = self.machine.docker(
            "create",
            "--name",
            f"job-{uuid.uuid4().hex[:12]}",
            "--workdir",
            self.container_workspace,
            "--network",
            self.network,
            "-e",
            f"HOME={CONTAINER_HOME}",
            "-e",
            "GITHUB_ACTIONS=true",
            "-e",
            "CI=true",
            "-v",
            f"{self.machine.socket}:/var/run/docker.sock",
            "-v",
            f"{self._mounted('work')}:{CONTAINER_WORK}",
            "-v",
            f"{self._mounted('home')}:{CONTAINER_HOME}",
            "-v",
            f"{self._mounted('workflow')}:{CONTAINER_WORKFLOW}",
            "-v",
            f"{self.repo.path}:{SOURCE}:ro",
            "-v",
            f"{machine_files}:{MACHINE}:ro",
            "--entrypoint",
            "tail",
            self.job_image,
            "-f",
            "/dev/null",
        ).strip()
        self.machine.docker("start", self.container)

    def end_job(self, job_id: str) -> None:
        machine = self.machine
        if machine is None or not self.container:
            return
        for builder in self.builders:  # setup-buildx-action's post step (cleanup: true)
            self.in_container(["docker", "buildx", "rm", builder], check=False)
        self.builders.clear()
        machine.docker_run("rm", "--force", "--volumes", self.container)
        machine.docker_run("network", "rm", self.network)
        left = machine.docker("ps", "--all", "--quiet").split()
        assert not left, f"{job_id} left containers on {machine.label}: {left}"
        self.container = ""

    def machine_env(self) -> dict[str, str]:
        """What the runner machine gives a container job: nothing of the host's environment,
        only the stand-ins' variables."""
        env = {"NO_COLOR": "1", **self.machine_variables, **self.extra_env}
        if self.registry_ca is not None:
            env["PIPELINE_REGISTRY_CA"] = f"{MACHINE}/registry-ca.pem"
        return env

    def github_env(self, event: Event) -> dict[str, str]:
        env = super().github_env(event)
        temp = f"{CONTAINER_WORK}/_temp"
        env.update(
            GITHUB_EVENT_PATH=f"{CONTAINER_WORKFLOW}/event.json",
            GITHUB_WORKSPACE=self.container_workspace,
            GITHUB_STEP_SUMMARY=f"{temp}/step_summary.md",
            GITHUB_OUTPUT=f"{temp}/output",
            GITHUB_ENV=f"{temp}/env",
            RUNNER_TEMP=temp,
            RUNNER_OS="Linux",
            HOME=CONTAINER_HOME,
        )
        if self.server_url:
            env["GITHUB_SERVER_URL"] = self.server_url
        return env

    # -- steps -------------------------------------------------------------------------------

    def in_container(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        stdin: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`docker exec` in the job container, variables passed by name as the runner does."""
        assert self.machine is not None
        env = env or {}
        names = [arg for name in sorted(env) for arg in ("-e", name)]
        done = self.machine.docker_run(
            "exec",
            *(["-i"] if stdin is not None else []),
            "--workdir",
            self.container_workspace,
            *names,
            self.container,
            *argv,
            env=env,
            stdin=stdin,
            timeout=1800,
        )
        if check:
            assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
        return done

    def execute(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """The step's script written under $RUNNER_TEMP and run with `bash -e`, as the runner
        runs a step with no `shell:` in a container that has bash."""
        name = f"{uuid.uuid4()}.sh"
        (self._mounted("work") / "_temp" / name).write_text(script + "\n")
        return self.in_container(["bash", "-e", f"{CONTAINER_WORK}/_temp/{name}"], env, check=False)

    def emulate(self, step: dict[str, Any], event: Event) -> None:
        pin = step["uses"]
        with_ = {k: self.expand(str(v), event) for k, v in step.get("with", {}).items()}
        if pin == pins.CHECKOUT:
            self.checkout(event, with_)
        elif pin == pins.LOGIN:
            self.in_container(
                [
                    "docker",
                    "login",
                    "--username",
                    with_["username"],
                    "--password-stdin",
                    with_["registry"],
                ],
                stdin=with_["password"],
            )
        elif pin == pins.SETUP_QEMU:
            assert with_["platforms"] == "arm64", with_
            flags = BINFMT_ARM64.read_text()
            assert flags.startswith("enabled") and "F" in flags.split("flags:")[1], flags
        elif pin == pins.SETUP_BUILDX:
            self.setup_buildx()
        elif pin == pins.COSIGN_INSTALLER:
            # The installer is a bash script that downloads with curl: in a container job it
            # needs both in the job image.
            found = self.in_container(
                ["sh", "-c", "command -v bash && command -v curl"], check=False
            )
            assert found.returncode == 0, "cosign-installer needs bash and curl in the job image"
        else:
            super().emulate(step, event)

    def checkout(self, event: Event, with_: dict[str, str]) -> None:
        """actions/checkout v7 in the container, fetch-depth 0, persist-credentials false."""
        assert with_.get("fetch-depth") == "0" and with_.get("persist-credentials") == "False"
        home = f"{CONTAINER_WORK}/_temp/{uuid.uuid4()}"
        if event.ref.startswith("refs/tags/"):
            target = ["checkout", "--force", event.ref]
        elif event.ref.startswith("refs/heads/"):
            branch = event.ref.removeprefix("refs/heads/")
            target = ["checkout", "--force", "-B", branch, f"refs/remotes/origin/{branch}"]
        else:  # a pull request's merge ref: the commit under test
            target = ["checkout", "--force", self.repo.head]
        script = "\n".join(
            [
                "set -e",
                f"mkdir -p {home}",
                f"export HOME={home}",  # checkout's temporary HOME, deleted when it is done
                f'git config --global --add safe.directory "{self.container_workspace}"',
                f'git config --global --add safe.directory "{SOURCE}"',
                "git init --quiet .",
                f"git remote add origin {SOURCE}",
                "git fetch --quiet --prune --no-recurse-submodules origin"
                " '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'",
                "git " + " ".join(target) + " --quiet",
                f"rm -rf {home}",
            ]
        )
        done = self.execute(script, {})
        assert done.returncode == 0, f"checkout: {done.stderr[-3000:]}"

    def setup_buildx(self) -> None:
        """docker/setup-buildx-action v4.3.0's default builder (src/context.ts getCreateArgs),
        with the two stand-ins as its `driver-opts` and `buildkitd-config-inline`."""
        name = f"builder-{uuid.uuid4()}"
        config = f"{MACHINE}/buildkitd.toml" if self.registry_ca is not None else None
        create = setup_buildx_create(name, self.buildkit_image, config=config)
        self.in_container(["docker", "buildx", "version"])
        self.in_container(create)
        self.builders.append(name)
        self.in_container(["docker", "buildx", "inspect", "--bootstrap", "--builder", name])
