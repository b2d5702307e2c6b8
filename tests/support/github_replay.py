"""The generated GitHub workflow, executed: every `run:` step of every job that the event selects,
in job order, with GitHub's variables and event payload, against the bench (used by
tests/integration/test_github_workflow.py and test_ci_keyless.py).

`uses:` steps are emulated, not skipped: checkout/setup steps are what this machine already is;
artifact uploads and downloads really move `dist/` through a store (each job starts with an empty
`dist/`), so a file a later job needs but an earlier one did not hand over fails the test. The
runner's machine set-up (trusting the bench CA, the login-action's docker config, the offline
base image and Trivy DB) is given as its environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.emit import GITHUB_FILE, github, pins
from pipeline.sandbox.registry import RegistryServer
from tests.support.bench import Bench
from tests.support.ci_containers import build_tool_wheel
from tests.support.ci_env import github_env
from tests.support.release_repo import ReleaseRepo

CONDITIONS = {
    github.IS_PUSH: lambda e: e.name == "push",
    github.IS_TAG: lambda e: e.name == "push" and e.ref.startswith("refs/tags/"),
    github.IS_PR: lambda e: e.name == "pull_request",
    github.IS_DISPATCH: lambda e: e.name == "workflow_dispatch",
}
EXPRESSION = re.compile(r"\$\{\{\s*([\w.]+)\s*\}\}")


@dataclass
class Event:
    name: str
    ref: str
    payload: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Runner:
    """Runs a workflow's jobs the way GitHub would for one event."""

    bench: Bench
    repo: ReleaseRepo
    ci_python: Path
    workdir: Path
    wheels: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    # What the runner machine adds for every job (a keyless bench: Fulcio's root, its URL).
    extra_env: dict[str, str] = field(default_factory=dict)
    # GitHub's OIDC token request for one job (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN), given
    # the event: the runner sets them only in a job granted `id-token: write`.
    oidc: Callable[[Event], tuple[str, str]] | None = None
    oidc_jobs: list[str] = field(default_factory=list)
    # The registry the workflow releases to (vars.PIPELINE_REGISTRY): the bench's by default.
    registry: RegistryServer | None = None

    @property
    def workspace(self) -> Path:
        """Where the job's checkout is on this machine (GITHUB_WORKSPACE): the repository."""
        return self.repo.path

    @property
    def target(self) -> RegistryServer:
        return self.registry or self.bench.registry

    def secrets(self) -> dict[str, str]:
        return {
            "COSIGN_KEY": self.bench.cosign_key.read_text(),
            "COSIGN_PASSWORD": self.bench.cosign_password,
            "REGISTRY_USERNAME": self.target.username or "",
            "REGISTRY_PASSWORD": self.target.password or "",
        }

    def variables(self) -> dict[str, str]:
        return {
            "PIPELINE_REGISTRY": self.target.host,
            "COSIGN_PUBLIC_KEY": self.bench.cosign_pub.read_text(),
        }

    def expand(self, text: str, event: Event) -> str:
        def value(match: re.Match[str]) -> str:
            scope, _, name = match.group(1).partition(".")
            if scope == "secrets":
                return self.secrets()[name]
            if scope == "vars":
                return self.variables()[name]
            if scope == "inputs":
                return event.inputs[name]
            github_values = {
                "github.ref": event.ref,
                "github.actor": "tests",
                "github.token": "ghs_tests-token",
                "github.repository": "acme/sample-app",
            }
            if match.group(1) in github_values:
                return github_values[match.group(1)]
            raise AssertionError(f"unexpected expression {match.group(0)}")

        return EXPRESSION.sub(value, text)

    def github_env(self, event: Event) -> dict[str, str]:
        payload = self.workdir / f"event-{event.name}.json"
        payload.write_text(json.dumps(event.payload))
        return github_env(
            event.name,
            event.ref,
            self.repo.head,
            payload,
            GITHUB_STEP_SUMMARY=str(self.workdir / "summary.md"),
        )

    def machine_env(self) -> dict[str, str]:
        """What the runner machine provides: PATH with its Python, trust in the registry's CA,
        the login-action's docker config, an offline base image and Trivy DB."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIPELINE_", "COSIGN_", "GITLAB", "GITHUB", "VIRTUAL_ENV"))
        }
        env.update(self.bench.tool_env())
        env["PATH"] = f"{self.ci_python}{os.pathsep}{os.environ['PATH']}"
        env["PIP_FIND_LINKS"] = " ".join(
            filter(None, [str(self.wheels), env.get("PIP_FIND_LINKS")])
        )
        env["PIPELINE_REGISTRY_CA"] = str(self.bench.registry.ca_file)
        env["PIPELINE_BASE_IMAGE"] = self.bench.base_image
        env["PIPELINE_TRIVY_DB_REPOSITORY"] = self.bench.sandbox_db  # no ignore file: no advisory
        env["PIPELINE_OFFLINE_FIXTURES"] = "1"  # the bench's fixture DB stands in for Trivy's
        env["PIPELINE_NOX_ENVDIR"] = str(self.workdir / "nox")
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        return env

    def run(self, workflow: dict[str, Any], event: Event) -> list[str]:
        """Run every job the event selects; return their ids in the order they ran."""
        ran: list[str] = []
        skipped: set[str] = set()
        for job_id, job in workflow["jobs"].items():  # emitted in dependency order
            condition = job.get("if")
            if condition is not None and not CONDITIONS[condition](event):
                skipped.add(job_id)
                continue
            if any(need in skipped for need in job.get("needs", [])):
                skipped.add(job_id)
                continue
            self.run_job(workflow, job_id, job, event)
            ran.append(job_id)
        return ran

    def run_job(
        self, workflow: dict[str, Any], job_id: str, job: dict[str, Any], event: Event
    ) -> None:
        self.begin_job(job_id, job, event)
        try:
            env = self.job_env(workflow, job_id, job, event)
            for step in job["steps"]:
                if not self.step_runs(step.get("if")):
                    continue
                if "uses" in step:
                    self.emulate(step, event)
                    continue
                step_env = {
                    **env,
                    **{k: self.expand(str(v), event) for k, v in step.get("env", {}).items()},
                }
                assert "${{" not in step["run"]
                if step["run"].startswith("gh release create "):
                    # github.com's own CLI and API: the notes it would publish must be there.
                    notes = (self.workspace / "dist" / "release-notes.md").read_text()
                    assert "cosign verify " in notes and "sha256:" in notes, notes
                    self.log.append(f"[{job_id}] (GitHub Release) {step['run']}")
                    continue
                result = self.execute(step["run"], step_env)
                self.log.append(
                    f"[{job_id}] $ {step['run']}\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
                )
                assert result.returncode == 0, (
                    f"{job_id}: `{step['run']}` failed:\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
                )
        finally:
            self.end_job(job_id)

    def begin_job(self, job_id: str, job: dict[str, Any], event: Event) -> None:
        """A fresh runner: nothing but the checkout (this replay keeps one checkout)."""
        shutil.rmtree(self.workspace / "dist", ignore_errors=True)

    def end_job(self, job_id: str) -> None:
        """Nothing to tear down on the host shell."""

    def job_env(
        self, workflow: dict[str, Any], job_id: str, job: dict[str, Any], event: Event
    ) -> dict[str, str]:
        """The machine's, GitHub's, the OIDC request's (a job granted `id-token: write`), the
        workflow's and the job's variables."""
        env = {**self.machine_env(), **self.github_env(event)}
        if job.get("permissions", {}).get("id-token") == "write" and self.oidc is not None:
            url, request_token = self.oidc(event)
            env["ACTIONS_ID_TOKEN_REQUEST_URL"] = url
            env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = request_token
            self.oidc_jobs.append(job_id)
        for scope in (workflow.get("env", {}), job.get("env", {})):
            env.update({k: self.expand(str(v), event) for k, v in scope.items()})
        return env

    def execute(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """One `run:` step as the runner's default shell runs it (`bash -e`)."""
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def step_runs(self, condition: str | None) -> bool:
        """The step conditions the workflow uses: always(), and a SARIF upload only when its
        file exists (`hashFiles(...) != ''`) and the pull request is not a fork's."""
        if condition is None or condition == "always()":
            return True
        parts = condition.split(" && ")
        assert parts[0] == "always()", condition
        for part in parts[1:]:
            match = re.fullmatch(r"hashFiles\('([^']+)'\) != ''", part)
            if match:
                if not (self.workspace / match.group(1)).is_file():
                    return False
            else:
                assert part == github.SAME_REPOSITORY, condition
        return True

    def emulate(self, step: dict[str, Any], event: Event) -> None:
        pin = step["uses"]
        assert isinstance(pin, pins.Pin) and pin in pins.ALL
        with_ = {k: self.expand(str(v), event) for k, v in step.get("with", {}).items()}
        dist = self.workspace / "dist"
        if pin == pins.UPLOAD_ARTIFACT:
            store = self.workdir / "artifacts" / with_["name"]
            shutil.rmtree(store, ignore_errors=True)
            assert dist.is_dir() and any(dist.iterdir()), f"nothing to upload as {with_['name']}"
            shutil.copytree(dist, store)
            self.artifacts[with_["name"]] = store
        elif pin == pins.DOWNLOAD_ARTIFACT:
            names = [
                n
                for n in self.artifacts
                if re.fullmatch(with_.get("pattern", with_.get("name", "")).replace("*", ".*"), n)
            ]
            assert names, f"no artifact matches {with_}"
            for name in names:
                shutil.copytree(self.artifacts[name], dist, dirs_exist_ok=True)
        elif pin == pins.LOGIN:
            assert with_["registry"] == self.target.host and with_["username"] and with_["password"]
        elif pin == pins.UPLOAD_SARIF:
            sarif = json.loads((self.workspace / with_["sarif_file"]).read_text())
            assert len(sarif["runs"]) == 1, "github.com takes one run per category"
            self.categories.append(with_["category"])


def prepare(
    bench: Bench, work: Path, repo: ReleaseRepo, env: dict[str, str] | None = None
) -> tuple[Runner, dict[str, Any]]:
    """The workflow of `repo` (regenerated, the tool's wheel built here and locked) and a Runner
    for it. `env` is added when the spec is read (variables the spec itself reads)."""
    # The tool is not published: its wheel is built here, locked (offline), and served to the
    # jobs' hash-locked install (PIP_FIND_LINKS); the runner's Python starts empty.
    wheels = build_tool_wheel(repo, work / "wheels").parent
    locked = subprocess.run(
        [sys.executable, "-m", "pipeline", "workflows", "--find-links", str(wheels)],
        cwd=repo.path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert locked.returncode == 0, locked.stderr[-2000:]
    if repo.git("status", "--porcelain"):
        repo.commit("lock the tool's wheel built here")
    subprocess.run([sys.executable, "-m", "venv", str(work / "ci-python")], check=True)
    ci_python = work / "ci-python" / "bin"

    workflow = with_pins(yaml.safe_load((repo.path / GITHUB_FILE).read_text()))
    return Runner(bench, repo, ci_python, work, wheels, extra_env=dict(env or {})), workflow


def with_pins(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow with every `uses:` mapped back to the pin it must be (the YAML holds plain
    strings; a `uses:` that is no pin of ours fails here)."""
    by_uses = {pin.uses: pin for pin in pins.ALL}
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                step["uses"] = by_uses[step["uses"]]
    return workflow
