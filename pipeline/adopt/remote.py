"""Where `pipeline init` points the images, from the repository's git remote.

- GitHub (`github.com`): GitHub's container registry, `ghcr.io/OWNER/REPO` (one image at the
  root) or `ghcr.io/OWNER/REPO/NAME`; the generated workflow logs in with GITHUB_TOKEN.
- GitLab (`gitlab.com`, or a host named `gitlab.…`): the project's container registry,
  `registry.gitlab.com/GROUP/PROJECT[/NAME]`, which is `$CI_REGISTRY_IMAGE[/NAME]` in its CI,
  with the job's predefined `CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD`. A self-managed
  instance's registry host is its own setting: GitLab's documented default port 5050 is written,
  with a comment.
- Anything else (another host, a local path, no remote): the built-in `local` registry, said in
  a comment, so the first release works on this machine; the user names their registry later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from pipeline.errors import SpecError
from pipeline.spec import LOCAL_REGISTRY

Kind = Literal["github", "gitlab", "local"]
GITHUB_HOSTS = frozenset({"github.com", "www.github.com", "ssh.github.com"})
GHCR = "ghcr.io"
GITLAB_COM = "gitlab.com"
GITLAB_COM_REGISTRY = "registry.gitlab.com"
GITLAB_REGISTRY_PORT = 5050  # a self-managed registry "under an existing domain" (GitLab docs)
DEFAULT_REMOTE = "origin"

_URL = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/]*@)?(?P<host>[^/:]+)(?::\d*)?(?P<path>/.*)?$"
)
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?!//)(?P<path>.+)$")
_NAME = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    host: str | None  # None: a local path
    path: str | None  # `owner/repo`, no `.git`

    @property
    def kind(self) -> Kind:
        if self.host is None or not self.path:
            return "local"
        if self.host in GITHUB_HOSTS:
            return "github"
        if self.host == GITLAB_COM or self.host.startswith("gitlab."):
            return "gitlab"
        return "local"


def parse_url(name: str, url: str) -> Remote:
    """A remote's URL read as host and path; credentials in it are never kept."""
    text = url.strip()
    if text.startswith("file://"):
        return Remote(name, text, None, None)
    if match := _URL.match(text):
        return Remote(name, _safe(text), match.group("host").lower(), _path(match.group("path")))
    if text.startswith(("/", ".", "~")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return Remote(name, text, None, None)
    if "::" not in text and (match := _SCP_LIKE.match(text)):
        return Remote(name, _safe(text), match.group("host").lower(), _path(match.group("path")))
    raise SpecError(
        f"git remote {name!r}: cannot read a host and path from its URL {_safe(text)!r}; "
        "name another with --remote"
    )


def _safe(url: str) -> str:
    """The URL without a user or password (`https://user:token@host/…` → `https://host/…`)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^@/]*@", r"\1", url)


def _path(raw: str | None) -> str | None:
    path = (raw or "").strip("/").removesuffix(".git").strip("/")
    return path or None


def choose(remotes: Mapping[str, str], wanted: str | None) -> Remote | None:
    """The remote init reads: `--remote NAME`, else `origin`, else the only one, else none."""
    if wanted is not None:
        if wanted not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            raise SpecError(
                f"--remote {wanted}: the repository has no such remote (known: {known})"
            )
        return parse_url(wanted, remotes[wanted])
    if DEFAULT_REMOTE in remotes:
        return parse_url(DEFAULT_REMOTE, remotes[DEFAULT_REMOTE])
    if len(remotes) == 1:
        name = next(iter(remotes))
        return parse_url(name, remotes[name])
    if remotes:
        raise SpecError(
            f"the repository has {len(remotes)} remotes ({', '.join(sorted(remotes))}) and no "
            "origin: name the one to derive the registry from with --remote"
        )
    return None


def slug(text: str) -> str:
    """A registry path component: lowercase, `[a-z0-9._-]`, no leading or trailing separator."""
    return _NAME.sub("-", text.lower()).strip("-._") or "app"


@dataclass(frozen=True)
class Destination:
    """The registry and repository prefix init writes into the spec, and why (a comment)."""

    kind: Kind
    host: str
    prefix: str  # repository path shared by the images: `owner/repo`
    project: str  # the project's name (the spec's `name`)
    url: str  # the project's page (the org.opencontainers.image.url label), or ""
    note: tuple[str, ...]  # comment lines for release.py
    username_env: str | None = None
    password_env: str | None = None

    def repository(self, image: str, *, alone: bool) -> str:
        """`prefix` for the one image at the root; `prefix/image` otherwise."""
        return self.prefix if alone else f"{self.prefix}/{slug(image)}"


def destination(remote: Remote | None, root_name: str) -> Destination:
    if remote is None or remote.kind == "local" or remote.path is None or remote.host is None:
        project = slug(PurePosixPath(remote.path).name if remote and remote.path else root_name)
        why = (
            "this repository has no git remote"
            if remote is None
            else f"remote {remote.name} ({remote.url}) is neither GitHub nor GitLab"
        )
        return Destination(
            kind="local",
            host=LOCAL_REGISTRY,
            prefix=project,
            project=project,
            url="",
            note=(
                f"{why}: the built-in `local` registry (a TLS + password registry the tool",
                "starts on this machine's loopback). Name your registry here (host=...,",
                "username_env/password_env), or set PIPELINE_REGISTRY=host[:port] for one run.",
            ),
        )
    path = remote.path.lower()
    project = slug(PurePosixPath(path).name)
    url = f"https://{remote.host if remote.host not in GITHUB_HOSTS else 'github.com'}/{path}"
    if remote.kind == "github":
        return Destination(
            kind="github",
            host=GHCR,
            prefix=path,
            project=project,
            url=url,
            note=(
                f"remote {remote.name} is github.com/{path}: GitHub's container registry.",
                "The generated workflow logs in with GITHUB_TOKEN (packages: write); on a",
                "laptop, `docker login ghcr.io` with a token that may write packages.",
                "PIPELINE_REGISTRY=local releases to the built-in sandbox registry instead.",
            ),
        )
    host = (
        GITLAB_COM_REGISTRY
        if remote.host == GITLAB_COM
        else f"{remote.host}:{GITLAB_REGISTRY_PORT}"
    )
    instance = (
        "gitlab.com's registry"
        if remote.host == GITLAB_COM
        else f"GitLab's default registry address for {remote.host}; check $CI_REGISTRY there"
    )
    return Destination(
        kind="gitlab",
        host=host,
        prefix=path,
        project=project,
        url=url,
        note=(
            f"remote {remote.name} is {remote.host}/{path}: the project's container registry",
            f"({instance}), so host/repository is $CI_REGISTRY_IMAGE in its CI. Jobs log in",
            "with GitLab's predefined CI_REGISTRY_USER and CI_REGISTRY_PASSWORD.",
            "PIPELINE_REGISTRY=local releases to the built-in sandbox registry instead.",
        ),
        username_env="CI_REGISTRY_USER",
        password_env="CI_REGISTRY_PASSWORD",  # noqa: S106  (a variable's name, not a value)
    )
