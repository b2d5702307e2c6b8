"""The generated GitHub workflow, executed: every `run:` step of every job that the event selects,
in job order, with GitHub's variables and event payload, against the bench.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.emit import GITHUB_FILE, github, pins
from tests.support.bench import Bench
from tests.support.ci_containers import build_tool_wheel
from tests.support.ci_env import github_env
from tests.support.release_repo import ReleaseRepo, clone_project, release_tags

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

    def secrets(self) -> dict[str, str]:
        return {
            "COSIGN_KEY": self.bench.cosign_key.read_text(),
            "COSIGN_PASSWORD": self.bench.cosign_password,
            "REGISTRY_USERNAME": self.bench.registry.username or "",
            "REGISTRY_PASSWORD": self.bench.registry.password or "",
        }

    def variables(self) -> dict[str, str]:
        return {
            "PIPELINE_REGISTRY": self.bench.registry.host,
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
        dist = self.repo.path / "dist"
        shutil.rmtree(dist, ignore_errors=True)  # a fresh runner: nothing but the checkout
        env = {**self.machine_env(), **self.github_env(event)}
        for scope in (workflow.get("env", {}), job.get("env", {})):
            env.update({k: self.expand(str(v), event) for k, v in scope.items()})
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
                notes = (self.repo.path / "dist" / "release-notes.md").read_text()
                assert "cosign verify " in notes and "sha256:" in notes, notes
                self.log.append(f"[{job_id}] (GitHub Release) {step['run']}")
                continue
            result = subprocess.run(
                ["bash", "-e", "-c", step["run"]],
                cwd=self.repo.path,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            self.log.append(
                f"[{job_id}] $ {step['run']}\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
            assert result.returncode == 0, (
                f"{job_id}: `{step['run']}` failed:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
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
                if not (self.repo.path / match.group(1)).is_file():
                    return False
            else:
                assert part == github.SAME_REPOSITORY, condition
        return True

    def emulate(self, step: dict[str, Any], event: Event) -> None:
        pin = step["uses"]
        assert isinstance(pin, pins.Pin) and pin in pins.ALL
        with_ = {k: self.expand(str(v), event) for k, v in step.get("with", {}).items()}
        dist = self.repo.path / "dist"
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
            assert (
                with_["registry"] == self.bench.registry.host
                and with_["username"]
                and with_["password"]
            )
        elif pin == pins.UPLOAD_SARIF:
            sarif = json.loads((self.repo.path / with_["sarif_file"]).read_text())
            assert len(sarif["runs"]) == 1, "github.com takes one run per category"
            self.categories.append(with_["category"])


@pytest.fixture(scope="module")
def setup(bench: Bench, tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, dict[str, Any]]:
    work = tmp_path_factory.mktemp("github")
    repo = clone_project(work / "project", "tests/github")
    # The tool is not published: its wheel is built here, locked (offline), and served to the
    # jobs' hash-locked install (PIP_FIND_LINKS); the runner's Python starts empty.
    wheels = build_tool_wheel(repo, work / "wheels").parent
    locked = subprocess.run(
        [sys.executable, "-m", "pipeline", "workflows", "--find-links", str(wheels)],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert locked.returncode == 0, locked.stderr[-2000:]
    if repo.git("status", "--porcelain"):
        repo.commit("lock the tool's wheel built here")
    subprocess.run([sys.executable, "-m", "venv", str(work / "ci-python")], check=True)
    ci_python = work / "ci-python" / "bin"

    workflow = yaml.safe_load((repo.path / GITHUB_FILE).read_text())
    # The YAML holds plain strings: map `uses:` back to the pins they must be.
    by_uses = {pin.uses: pin for pin in pins.ALL}
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                step["uses"] = by_uses[step["uses"]]
    return Runner(bench, repo, ci_python, work, wheels), workflow


def test_pull_request_builds_and_scans_and_pushes_nothing(
    bench: Bench, setup: tuple[Runner, dict[str, Any]]
) -> None:
    runner, workflow = setup
    event = Event(
        "pull_request",
        "refs/pull/12/merge",
        {"pull_request": {"number": 12}, "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, event) == ["pull-request"]
    assert bench.client().tags(runner.repo.repository) == []
    assert runner.categories == [
        "trivy-sample-app-linux-amd64",
        "trivy-sample-app-linux-arm64",
    ], "one SARIF upload (one run) per image and platform"


def test_branch_push_then_tag_push_then_rollback(
    bench: Bench, setup: tuple[Runner, dict[str, Any]]
) -> None:
    runner, workflow = setup
    repo = runner.repo
    branch = Event(
        "push",
        "refs/heads/main",
        {"ref": "refs/heads/main", "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, branch) == ["build", "scan", "sign", "publish"]
    first = release_tags(bench.client(), repo.repository)
    assert set(first) == {"main", f"sha-{repo.head[:7]}"}
    main_digest = first["main"]

    server = repo.path / "sample-app" / "app" / "server.py"
    server.write_text(server.read_text().replace('"APP_VERSION", "dev"', '"APP_VERSION", "4"'))
    repo.commit("release 4.0.0")
    repo.tag("v4.0.0")
    tag = Event(
        "push",
        "refs/tags/v4.0.0",
        {"ref": "refs/tags/v4.0.0", "repository": {"default_branch": "main"}},
    )
    assert runner.run(workflow, tag) == [
        "build",
        "scan",
        "sign",
        "publish",
        "github-release",
        "production",
    ]
    second = release_tags(bench.client(), repo.repository)
    release = second["4.0.0"]
    assert release != main_digest
    assert {t for t, d in second.items() if d == release} == {
        "4.0.0",
        "4.0",
        "4",
        "latest",
        f"sha-{repo.head[:7]}",
        "production",
    }
    assert "## Release 4.0.0" in (runner.workdir / "summary.md").read_text()

    inputs = {"tag": "production", "version": "4.0.0"}
    payload = {"inputs": inputs, "ref": "refs/heads/main", "repository": {"default_branch": "main"}}
    rollback = Event("workflow_dispatch", "refs/heads/main", payload, inputs=inputs)
    assert runner.run(workflow, rollback) == ["rollback"]
    third = release_tags(bench.client(), repo.repository)
    assert third["production"] == release, "production points at the verified 4.0.0"
    assert third["4.0.0"] == release, "the immutable version tag did not move"

    bad = {"tag": "4.0.0", "version": "4.0.0"}
    refused = Event("workflow_dispatch", "refs/heads/main", {**payload, "inputs": bad}, inputs=bad)
    with pytest.raises(AssertionError, match="immutable tag"):
        runner.run(workflow, refused)
    assert release_tags(bench.client(), repo.repository)["4.0.0"] == release
