"""Adoption, as a new user does it: the wheel of this project, installed into a fresh venv (not
editable, not from this checkout), then `pipeline init`, commit, tag and release in repositories
this project has never seen (tests/support/adopt_repos.py), on the sandbox: the built-in `local`
registry of a sandbox of the test's own (PIPELINE_SANDBOX_DIR), whose Docker Hub stand-ins let
`FROM debian:bookworm-slim` build offline with no build argument. What the report says is then
checked through the registry API and with `cosign verify`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import __version__
from pipeline.oci import platform_digests
from pipeline.sandbox.local import running_registry
from pipeline.toolchain.requirements import NOX_REQUIREMENT
from tests.support import adopt_repos
from tests.support.adopt_repos import Repo
from tests.support.wheel import build_wheel, sha256

PACKAGE_DATA = (
    "from importlib import resources as r; p = r.files('pipeline'); "
    "print(p.joinpath('sandbox/data/trivy-db.yaml').is_file(), p.joinpath('py.typed').is_file())"
)
PURE_ENV_PREFIXES = ("PIPELINE_", "COSIGN_", "GITHUB", "GITLAB", "VIRTUAL_ENV", "DOCKER_CONFIG")


@dataclass(frozen=True)
class Tool:
    """The fresh venv holding the installed wheel (and nox, as a user installs it)."""

    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="session")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Tool:
    """Build the wheel once per session and install it, with its `tools` extra, into a new venv."""
    folder = tmp_path_factory.mktemp("tool")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    wheel = build_wheel(folder / "wheels", python)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{wheel}[tools]", NOX_REQUIREMENT],
        check=True,
        cwd=folder,  # not this checkout: nothing of it is on the path
    )
    return Tool(venv, wheel)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, tool: Tool) -> Iterator[Path]:
    """A sandbox of the tests' own, stopped at the end (its mirror leaves dockerd's config)."""
    folder = tmp_path_factory.mktemp("sandbox")
    yield folder
    down = _run(tool, ["pipeline", "sandbox", "down"], cwd=folder, sandbox=folder)
    assert down.returncode == 0, down.stderr


def _env(
    tool: Tool, sandbox: Path | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PURE_ENV_PREFIXES)}
    env.pop("CI", None)
    env["PATH"] = f"{tool.bin}{os.pathsep}{env['PATH']}"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    if sandbox is not None:
        env["PIPELINE_SANDBOX_DIR"] = str(sandbox)
    env.update(extra or {})
    return env


def _run(
    tool: Tool,
    argv: list[str],
    *,
    cwd: Path,
    sandbox: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int = 1800,
) -> subprocess.CompletedProcess[str]:
    """A command of the installed tool (`pipeline`, `nox`), as the user runs it."""
    return subprocess.run(
        [str(tool.bin / argv[0]), *argv[1:]],
        cwd=cwd,
        env=_env(tool, sandbox, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result.stderr


def test_the_wheel_is_the_distribution_and_installs_a_working_tool(tool: Tool) -> None:
    assert tool.wheel.name == f"pipeline_release-{__version__}-py3-none-any.whl"
    version = _run(tool, ["pipeline", "--version"], cwd=tool.venv)
    assert version.stdout.strip() == f"pipeline {__version__}"
    site = subprocess.run(
        [str(tool.bin / "python"), "-c", "import pipeline, sys; print(pipeline.__file__)"],
        cwd=tool.venv,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert site.startswith(str(tool.venv)), "the installed package, not this checkout"
    files = _run(
        tool,
        ["python", "-c", PACKAGE_DATA],
        cwd=tool.venv,
    )
    assert files.stdout.split() == ["True", "True"], files.stderr
    doctor = _run(tool, ["pipeline", "doctor"], cwd=tool.venv)
    assert doctor.returncode == 0, doctor.stderr
    assert "trivy" in doctor.stdout + doctor.stderr
    assert (tool.bin / "trivy").is_file(), "the tools extra installs the pinned scanner"


def test_the_wheel_is_reproducible(tool: Tool, tmp_path: Path) -> None:
    again = build_wheel(tmp_path / "again", str(tool.bin / "python"))
    assert sha256(again) == sha256(tool.wheel)


def _check_release(
    tool: Tool, sandbox: Path, repo: Repo, images: dict[str, tuple[str, ...]]
) -> None:
    """The report, the registry API and cosign agree: every image's tags name its digest, its
    platforms are the spec's, and the signature verifies with the run's public key."""
    report = json.loads((repo.path / "dist" / "release.json").read_text())
    assert report["status"] == "pass"
    server = running_registry(sandbox)
    assert server is not None, "the sandbox registry runs"
    client = server.client()
    assert {i["name"] for i in report["images"]} == set(images)
    for image in report["images"]:
        host, _, repository = image["repository"].partition("/")
        assert host == server.host
        digest, names = image["index_digest"], {t["name"] for t in image["tags"]}
        tags = {t for t in client.tags(repository) if not t.endswith((".sig", ".att"))}
        tags.discard("buildcache")
        assert tags == names and {"1.0.0", "1.0", "1", "latest"} <= names
        assert all(client.digest_of(repository, tag) == digest for tag in tags)
        index = client.resolve(repository, digest)
        assert index is not None and index.is_index
        assert platform_digests(index.document) == image["platforms"]
        assert sorted(image["platforms"]) == sorted(images[image["name"]])
        bases = {reference for reference, _ in image["base_images"]}
        assert bases <= {"debian:bookworm-slim", "debian:bookworm"}, bases
        verified = subprocess.run(
            [
                "cosign",
                "verify",
                "--key",
                str(repo.path / "dist" / "cosign.pub"),
                "--insecure-ignore-tlog=true",
                "--output",
                "json",
                f"{image['repository']}:1.0.0",
            ],
            env={
                **_env(tool, sandbox),
                "SSL_CERT_FILE": str(sandbox / "ca-bundle.pem"),
                "DOCKER_CONFIG": str(sandbox / "docker"),
            },
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
        payload = json.loads(verified.stdout)[0]
        assert payload["critical"]["image"]["docker-manifest-digest"] == digest
        assert payload["optional"]["org.opencontainers.image.version"] == "1.0.0"


def _adopt(tool: Tool, sandbox: Path, repo: Repo, *init_args: str) -> str:
    """`pipeline init`, then a second one that changes nothing, then commit and tag."""
    first = _ok(_run(tool, ["pipeline", "init", *init_args], cwd=repo.path, sandbox=sandbox))
    written = repo.files()
    second = _run(tool, ["pipeline", "init", *init_args], cwd=repo.path, sandbox=sandbox)
    _ok(second)
    assert repo.files() == written, "a second init writes nothing"
    assert "nothing to change" in second.stderr
    repo.commit("release with pipeline")
    repo.git("tag", "v1.0.0")
    return first


def test_a_single_dockerfile_repository_releases_with_its_nox_sessions(
    tool: Tool, sandbox: Path, tmp_path: Path
) -> None:
    """(a) GitHub remote: ghcr.io in the spec, released on the sandbox with PIPELINE_REGISTRY."""
    repo = adopt_repos.hello(tmp_path)
    out = _adopt(tool, sandbox, repo)
    assert "created release.py" in out and "created .github/workflows/release.yml" in out
    assert not (repo.path / ".gitlab-ci.yml").exists(), "a GitHub repository gets GitHub's file"
    spec = (repo.path / "release.py").read_text()
    assert 'repository="acme/hello",  # ghcr.io/acme/hello' in spec
    assert 'test_target="test"' in spec and 'target="runtime"' in spec
    assert "base_image_arg" not in spec, "FROM debian:bookworm-slim needs no build argument"
    sessions = _run(tool, ["nox", "-l"], cwd=repo.path, sandbox=sandbox)
    assert "- release -> The whole release in one process" in _ok(sessions) + sessions.stdout
    for argv, folder in (
        (["nox", "-s", "tags"], repo.path),
        (["pipeline", "tags"], repo.path / "tests"),
    ):
        tags = _run(tool, argv, cwd=folder, sandbox=sandbox)  # nox: from the noxfile's folder
        _ok(tags)
        assert {"1.0.0", "latest"} <= set(tags.stdout.split()), tags.stdout
    release = _run(
        tool,
        ["nox", "-s", "release"],
        cwd=repo.path,
        sandbox=sandbox,
        env={"PIPELINE_REGISTRY": "local"},
    )
    _ok(release)
    _check_release(tool, sandbox, repo, {"hello": ("linux/amd64", "linux/arm64")})


def test_a_monorepo_of_three_services_releases_from_a_sub_folder(
    tool: Tool, sandbox: Path, tmp_path: Path
) -> None:
    """(b) GitLab remote: the project's registry in the spec; one service amd64 only, one with no
    test stage; released from a service's folder (the spec and dist/ are at the root)."""
    repo = adopt_repos.shop(tmp_path)
    out = _adopt(tool, sandbox, repo)
    assert "created .gitlab-ci.yml" in out and not (repo.path / ".github").exists()
    spec = (repo.path / "release.py").read_text()
    assert 'host="registry.gitlab.com"' in spec and "$CI_REGISTRY_IMAGE" in spec
    assert spec.count("test_target=") == 2 and 'platforms=("linux/amd64",)' in spec
    sub = repo.path / "services" / "worker"
    local = {"PIPELINE_REGISTRY": "local"}
    _ok(_run(tool, ["pipeline", "release"], cwd=sub, sandbox=sandbox, env=local))
    assert not (sub / "dist").exists() and (repo.path / "dist" / "state.json").is_file()
    verify = _run(
        tool, ["pipeline", "verify"], cwd=repo.path / "services", sandbox=sandbox, env=local
    )
    assert _ok(verify).count("verifies") == 3
    both = ("linux/amd64", "linux/arm64")
    _check_release(tool, sandbox, repo, {"api": both, "worker": ("linux/amd64",), "web": both})


def test_a_repository_with_its_own_noxfile_and_gitlab_ci_keeps_them(
    tool: Tool, sandbox: Path, tmp_path: Path
) -> None:
    """(c) No remote: the built-in registry in the spec. Its own files are left as they were:
    the two noxfile lines are printed, the GitLab difference shown."""
    repo = adopt_repos.legacy(tmp_path)
    before = repo.files()
    out = _adopt(tool, sandbox, repo)
    after = repo.files()
    assert after["noxfile.py"] == before["noxfile.py"]
    assert after[".gitlab-ci.yml"] == before[".gitlab-ci.yml"]
    assert "from pipeline.nox_sessions import register\nregister()" in out
    assert ".gitlab-ci.yml exists and differs" in out
    assert 'host="local"' in (repo.path / "release.py").read_text()
    assert "the built-in `local` registry" in (repo.path / "release.py").read_text()
    release = _run(tool, ["pipeline", "release"], cwd=repo.path, sandbox=sandbox)
    _ok(release)
    _check_release(tool, sandbox, repo, {"legacy": ("linux/amd64", "linux/arm64")})
    # Its own session still runs, beside nothing of ours.
    lint = _run(tool, ["nox", "-s", "lint"], cwd=repo.path, sandbox=sandbox)
    _ok(lint)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("outside-git", r"not inside a git repository"),
        ("no-dockerfile", r"no Dockerfile in the repository"),
        ("unparsable", r"Dockerfile:2: unknown instruction 'RUNN'"),
        (
            "unknown-remote",
            r"--remote upstream: the repository has no such remote \(known: origin\)",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tool: Tool, tmp_path: Path, case: str, message: str
) -> None:
    folder = tmp_path / case
    folder.mkdir()
    argv = ["pipeline", "init"]
    if case != "no-dockerfile":
        broken = case == "unparsable"
        (folder / "Dockerfile").write_text(
            f"FROM debian:bookworm-slim\n{'RUNN' if broken else 'USER'} 1\n"
        )
    else:
        (folder / "README.md").write_text("# nothing to build\n")
    if case != "outside-git":
        subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    if case == "unknown-remote":
        subprocess.run(
            ["git", "-C", str(folder), "remote", "add", "origin", "git@github.com:a/b.git"],
            check=True,
        )
        argv += ["--remote", "upstream"]
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    result = _run(tool, argv, cwd=folder)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert result.stdout == ""
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before, "nothing written"
