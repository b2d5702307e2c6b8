"""A run killed outright leaves its private scratch folder (the docker config with the registry
login, derived keys): the next run removes it, and never a folder of a run still going."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pipeline.engine.workspace import (
    OWNER_FILE,
    SCRATCH_PREFIX,
    _copy_docker_config,
    _owner,
    sweep_scratch,
    with_logins,
)


def _folder(base: Path, name: str, owner: str | None) -> Path:
    folder = base / f"{SCRATCH_PREFIX}{name}"
    (folder / "docker").mkdir(parents=True)
    (folder / "docker" / "config.json").write_text('{"auths": {}}')
    if owner is not None:
        (folder / OWNER_FILE).write_text(owner)
    return folder


def test_folders_of_gone_runs_are_removed(tmp_path: Path) -> None:
    mine = _folder(tmp_path, "alive", _owner())
    killed = _folder(tmp_path, "killed", "999999999 12345")
    reused_pid = _folder(tmp_path, "reused", f"{os.getpid()} 1")  # same pid, other start time
    old = _folder(tmp_path, "old", None)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    recent = _folder(tmp_path, "recent", None)
    # A run that is naming itself: a sweep must not read "" as a dead owner (the race that
    # removed a concurrent run's CA bundle mid-release).
    starting = _folder(tmp_path, "starting", "")
    unrelated = tmp_path / "other-folder"
    unrelated.mkdir()
    removed = sweep_scratch(tmp_path)
    assert sorted(p.name for p in removed) == sorted(p.name for p in (killed, reused_pid, old))
    assert mine.is_dir() and recent.is_dir() and starting.is_dir() and unrelated.is_dir()
    assert not killed.exists() and not reused_pid.exists() and not old.exists()


def test_a_run_with_sandbox_fixtures_keeps_the_users_logins() -> None:
    """The built-in base or DB stands in while the images go to the user's registry, logged in
    with `docker login`: the run's private config holds both logins (the sandbox's alone made
    BuildKit pull the base from the user's registry without credentials: 401)."""
    user: dict[str, Any] = {
        "auths": {"reg.example:5000": {"auth": "dXNlcjpwdw=="}, "127.0.0.1:4000": {"auth": "b2xk"}},
        "credHelpers": {"ghcr.io": "gh"},
    }
    sandbox = {"auths": {"127.0.0.1:4000": {"auth": "cGlwZWxpbmU6bmV3"}}}
    merged = with_logins(user, sandbox)
    assert merged == {
        "auths": {
            "reg.example:5000": {"auth": "dXNlcjpwdw=="},
            "127.0.0.1:4000": {"auth": "cGlwZWxpbmU6bmV3"},
        },
        "credHelpers": {"ghcr.io": "gh"},
    }
    assert user["auths"]["127.0.0.1:4000"] == {"auth": "b2xk"}, "the user's config is untouched"
    assert with_logins({}, sandbox) == sandbox
    assert with_logins(user, {}) == user


def test_the_private_docker_config_keeps_the_builder_in_use(tmp_path: Path) -> None:
    """On GitHub, setup-buildx-action creates a builder and makes it current in
    ~/.docker/buildx. A run's private DOCKER_CONFIG without that state made buildx fall back to
    the daemon's `docker` driver, which a classic image store cannot export OCI with."""
    user = tmp_path / "home-docker"
    (user / "buildx" / "instances").mkdir(parents=True)
    (user / "buildx" / "current").write_text('{"Key":"unix:///var/run/docker.sock","Name":"b"}')
    (user / "contexts" / "meta").mkdir(parents=True)
    (user / "config.json").write_text('{"auths": {"reg.example": {"auth": "dTpw"}}}')
    private = tmp_path / "scratch" / "docker"
    _copy_docker_config({"DOCKER_CONFIG": str(user)}, private)
    assert (private / "config.json").read_text() == (user / "config.json").read_text()
    assert (private / "buildx" / "current").read_text().endswith('"Name":"b"}')
    assert (private / "contexts").resolve() == (user / "contexts").resolve()
    bare = tmp_path / "bare-docker"
    bare.mkdir()
    _copy_docker_config({"DOCKER_CONFIG": str(bare)}, tmp_path / "scratch2" / "docker")
    assert not (tmp_path / "scratch2" / "docker" / "buildx").exists()
