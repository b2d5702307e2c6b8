"""Repositories this project has never seen, made in temporary folders for the adoption tests:

- (a) `hello`: one Dockerfile at the root, a shell service on `FROM debian:bookworm-slim` with a
  test stage; a GitHub remote;
- (b) `shop`: a monorepo of three services in sub-folders (`api` with a test stage, `worker`
  amd64 only through `FROM --platform=linux/amd64`, `web` with no test stage); a GitLab remote;
- (c) `legacy`: a repository that already has its own `noxfile.py` and `.gitlab-ci.yml`; no
  remote.

Every app is clean (non-root USER, a .dockerignore, a HEALTHCHECK), so the default gate and the
preflight pass; its tests run in the test stage.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DOCKERIGNORE = ".git\n.gitignore\n.env\n.env.*\n*.key\n*.pem\ndist\nrelease.py\nnoxfile.py\n"
SERVICE_SH = """#!/bin/sh
# A tiny shell service: prints who it is; `--check` is its health check.
case "${1:-}" in
  --check) exit 0 ;;
  *) echo "${SERVICE_NAME:-service} on $(uname -m)" ;;
esac
"""
TEST_SH = """#!/bin/sh
set -eu
out=$(sh ./service.sh)
case "$out" in
  *" on "*) echo "ok: $out" ;;
  *) echo "unexpected: $out"; exit 1 ;;
esac
sh ./service.sh --check
"""


def service_dockerfile(
    name: str, *, base: str = "debian:bookworm-slim", test: bool = True, platform: str = ""
) -> str:
    """A shell service: the release stage has no RUN, so nothing runs under emulation."""
    fixed = f"--platform={platform} " if platform else ""
    lines = [
        f"# {name}: a shell service",
        f"FROM {fixed}{base} AS base",
        "WORKDIR /srv",
        "COPY service.sh ./",
    ]
    if test:
        lines += [
            "",
            "# The tests run here; the release image never contains them.",
            "FROM base AS test",
            "COPY tests/ tests/",
            'RUN ["sh", "tests/test.sh"]',
        ]
    lines += [
        "",
        "FROM base AS runtime",
        f"ENV SERVICE_NAME={name}",
        "USER 10001:10001",
        "EXPOSE 8080",
        'HEALTHCHECK --interval=30s CMD ["sh", "/srv/service.sh", "--check"]',
        'CMD ["sh", "/srv/service.sh"]',
        "",
    ]
    return "\n".join(lines)


@dataclass
class Repo:
    path: Path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def files(self) -> dict[str, bytes]:
        """Every file of the work tree but .git and dist: what `init` may have written."""
        return {
            str(p.relative_to(self.path)): p.read_bytes()
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.relative_to(self.path).parts[0] not in (".git", "dist")
        }


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _service(folder: str, name: str, **options: object) -> dict[str, str]:
    prefix = f"{folder}/" if folder else ""
    test = bool(options.get("test", True))
    files = {
        f"{prefix}Dockerfile": service_dockerfile(name, **options),  # type: ignore[arg-type]
        f"{prefix}service.sh": SERVICE_SH,
        f"{prefix}.dockerignore": DOCKERIGNORE,
    }
    if test:
        files[f"{prefix}tests/test.sh"] = TEST_SH
    return files


def _init(path: Path, files: dict[str, str], remote: str | None) -> Repo:
    path.mkdir(parents=True)
    _write(path, files)
    repo = Repo(path)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "adopter@example.invalid")
    repo.git("config", "user.name", "adopter")
    if remote:
        repo.git("remote", "add", "origin", remote)
    repo.commit("the app, before the release tool")
    return repo


def hello(folder: Path) -> Repo:
    """(a) One Dockerfile at the root; GitHub remote."""
    files = {**_service("", "hello"), ".gitignore": "dist/\n"}
    return _init(folder / "hello", files, "git@github.com:Acme/Hello.git")


def shop(folder: Path) -> Repo:
    """(b) Three services in sub-folders; GitLab remote."""
    files = {
        **_service("services/api", "api"),
        **_service("services/worker", "worker", platform="linux/amd64"),
        **_service("services/web", "web", base="debian:bookworm", test=False),
        ".gitignore": "dist/\n",
        "README.md": "# shop\n",
    }
    return _init(folder / "shop", files, "https://gitlab.com/acme/shop.git")


LEGACY_NOXFILE = '''"""The project's own sessions, from before the release tool."""

import nox


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """Check the shell scripts."""
    session.run("sh", "-n", "service.sh")
'''
LEGACY_GITLAB_CI = """# The project's own pipeline, from before the release tool.
stages: [test]
lint:
  stage: test
  script:
    - sh -n service.sh
"""


def legacy(folder: Path) -> Repo:
    """(c) Its own noxfile.py and .gitlab-ci.yml; no remote."""
    files = {
        **_service("", "legacy", base="debian:bookworm"),
        "noxfile.py": LEGACY_NOXFILE,
        ".gitlab-ci.yml": LEGACY_GITLAB_CI,
        ".gitignore": "dist/\n",
    }
    return _init(folder / "legacy", files, None)
