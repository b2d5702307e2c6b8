"""Typed models of what the emitters generate; `to_data()` gives the plain data that is dumped.

Only the keys the emitters use are modelled. Empty optional parts are left out of the output, so
a model never needs to know YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.emit.pins import Pin
from pipeline.emit.yamldump import Annotated

Data = dict[str, Any]


def _put(data: Data, key: str, value: Any) -> None:
    if value not in (None, "", (), [], {}):
        data[key] = dict(value) if isinstance(value, Mapping) else value


# --- GitHub Actions ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    uses: Pin | None = None
    with_: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    if_: str | None = None
    id: str | None = None
    # Only the steps that use a secret name it (`env`/`with`); nothing else can read it.

    def to_data(self) -> Data:
        data: Data = {"name": self.name}
        _put(data, "id", self.id)
        _put(data, "if", self.if_)
        if self.uses is not None:
            data["uses"] = self.uses
        _put(data, "with", self.with_)
        _put(data, "env", self.env)
        _put(data, "run", self.run)
        return data


@dataclass(frozen=True, kw_only=True)
class Job:
    name: str
    runs_on: str
    steps: tuple[Step, ...]
    permissions: Mapping[str, str | Annotated]
    needs: tuple[str, ...] = ()
    if_: str | None = None
    environment: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_minutes: int = 60
    container: Mapping[str, Any] = field(default_factory=dict)
    concurrency: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> Data:
        data: Data = {"name": self.name}
        _put(data, "needs", list(self.needs))
        _put(data, "if", self.if_)
        data["runs-on"] = self.runs_on
        data["permissions"] = dict(self.permissions)
        _put(data, "environment", self.environment)
        _put(data, "concurrency", self.concurrency)
        _put(data, "container", self.container)
        data["timeout-minutes"] = self.timeout_minutes
        _put(data, "env", self.env)
        data["steps"] = [step.to_data() for step in self.steps]
        return data


@dataclass(frozen=True, kw_only=True)
class Workflow:
    name: str
    on: Mapping[str, Any]
    permissions: Mapping[str, str]
    concurrency: Mapping[str, Any]
    env: Mapping[str, str]
    jobs: Mapping[str, Job]

    def to_data(self) -> Data:
        data: Data = {
            "name": self.name,
            "on": dict(self.on),
            "permissions": dict(self.permissions),
            "concurrency": dict(self.concurrency),
        }
        _put(data, "env", self.env)
        data["jobs"] = {job_id: job.to_data() for job_id, job in self.jobs.items()}
        return data


# --- GitLab CI ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GitlabJob:
    stage: str
    script: tuple[str, ...]
    needs: tuple[str, ...] | None = None  # None: GitLab's default (previous stages)
    rules: tuple[Mapping[str, Any], ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    id_tokens: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    resource_group: str | None = None
    services: tuple[Mapping[str, Any], ...] = ()
    interruptible: bool | None = None  # None: the default's (false)
    timeout: str | None = None
    release: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> Data:
        data: Data = {"stage": self.stage}
        if self.needs is not None:
            data["needs"] = list(self.needs)
        _put(data, "rules", [dict(rule) for rule in self.rules])
        _put(data, "tags", list(self.tags))
        _put(data, "services", [dict(service) for service in self.services])
        _put(data, "variables", self.variables)
        _put(data, "id_tokens", self.id_tokens)
        _put(data, "environment", self.environment)
        _put(data, "resource_group", self.resource_group)
        if self.interruptible is not None:
            data["interruptible"] = self.interruptible
        _put(data, "timeout", self.timeout)
        data["script"] = list(self.script)
        _put(data, "release", self.release)
        _put(data, "artifacts", self.artifacts)
        return data


@dataclass(frozen=True, kw_only=True)
class GitlabPipeline:
    stages: tuple[str, ...]
    variables: Mapping[str, str]
    default: Mapping[str, Any]
    workflow: Mapping[str, Any]
    jobs: Mapping[str, GitlabJob]

    def to_data(self) -> Data:
        data: Data = {
            "stages": list(self.stages),
            "variables": dict(self.variables),
            "default": dict(self.default),
            "workflow": dict(self.workflow),
        }
        for job_id, job in self.jobs.items():
            data[job_id] = job.to_data()
        return data
