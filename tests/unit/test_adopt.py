"""`pipeline init`'s pure logic: Dockerfiles, the remote, the rendered files, the change plan."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from pipeline.adopt import changes, dockerfiles, remote, render
from pipeline.errors import SpecError
from pipeline.preflight import Finding
from pipeline.specload import load_spec

P = PurePosixPath

APP = """\
# syntax=docker/dockerfile:1
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS base
WORKDIR /srv
COPY app.sh ./
FROM base AS test
RUN <<EOF
sh app.sh --self-test
EXPOSE 1
EOF
FROM base AS runtime
ARG VERSION=dev
ENV APP_VERSION=$VERSION
EXPOSE 8080 9090/udp
USER app:app
HEALTHCHECK CMD ["sh", "app.sh", "--check"]
"""


def test_stages_args_expose_user() -> None:
    d = dockerfiles.parse(P("Dockerfile"), APP)
    assert [s.name for s in d.stages] == ["base", "test", "runtime"]
    assert (d.target, d.test_target, d.base_image_arg) == ("runtime", "test", "BASE_IMAGE")
    assert d.args == (("BASE_IMAGE", "debian:bookworm-slim"), ("VERSION", "dev"))
    # The heredoc's EXPOSE is script text, not an instruction.
    assert d.exposes == ("8080", "9090/udp")
    assert (d.user, d.healthcheck, d.platforms) == ("app:app", True, None)


@pytest.mark.parametrize(
    ("text", "target", "test_target", "platforms", "base_arg"),
    [
        ('FROM debian:bookworm-slim\nCMD ["sh"]\n', None, None, None, None),
        (
            "FROM debian:bookworm AS build\nFROM build AS Test\nFROM build AS final\n",
            "final",
            "test",
            None,
            None,
        ),
        ("FROM --platform=linux/amd64 debian:12 AS app\n", None, None, ("linux/amd64",), None),
        (
            "FROM --platform=linux/amd64 debian:12 AS b\nFROM b AS run\n",
            "run",
            None,
            ("linux/amd64",),
            None,
        ),
        ("FROM --platform=$BUILDPLATFORM golang AS b\nFROM scratch\n", None, None, None, None),
        ("ARG B=x\nFROM debian AS test\nFROM ${B}\n", None, "test", None, "B"),
        ("FROM debian\nARG LOCAL=x\nFROM $LOCAL\n", None, None, None, None),  # not a global ARG
    ],
)
def test_targets_and_platforms(
    text: str,
    target: str | None,
    test_target: str | None,
    platforms: tuple[str, ...] | None,
    base_arg: str | None,
) -> None:
    d = dockerfiles.parse(P("Dockerfile"), text)
    assert (d.target, d.test_target, d.platforms, d.base_image_arg) == (
        target,
        test_target,
        platforms,
        base_arg,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FORM debian\n", r"^x/Dockerfile:1: unknown instruction 'FORM'$"),
        ("this is not\na Dockerfile\n", r"^x/Dockerfile:1: unknown instruction 'THIS'$"),
        ("", r"^x/Dockerfile: no FROM instruction"),
        ("# only a comment\n", r"^x/Dockerfile: no FROM instruction"),
        ("RUN make\nFROM debian\n", r"^x/Dockerfile:1: RUN before the first FROM$"),
        ("FROM\n", r"^x/Dockerfile:1: FROM names no image$"),
        ("FROM a b c d\n", r"^x/Dockerfile:1: FROM 'a b c d': expected"),
        ("FROM a\x00\n", r"^x/Dockerfile: not a Dockerfile \(binary content\)$"),
    ],
)
def test_a_dockerfile_docker_would_refuse(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        dockerfiles.parse(P("x/Dockerfile"), text)


def test_heredoc_bodies_are_blanked_and_lines_kept() -> None:
    text = "FROM a\nRUN <<-EOT cat <<'X'\n\tone\n\tEOT\ntwo\nX\nUSER u\n"
    assert dockerfiles.blank_heredocs(text) == "FROM a\nRUN <<-EOT cat <<'X'\n\n\n\n\nUSER u\n"


def test_find_dockerfiles_root_first_skipping_dependencies() -> None:
    files = [
        "services/web/Dockerfile",
        "Dockerfile",
        "services/api/Dockerfile",
        "node_modules/x/Dockerfile",
        ".devcontainer/Dockerfile",
        "docs/Dockerfile.md",
        "legacy/Containerfile",
    ]
    assert dockerfiles.find(files) == (
        P("Dockerfile"),
        P("legacy/Containerfile"),
        P("services/api/Dockerfile"),
        P("services/web/Dockerfile"),
    )


@pytest.mark.parametrize(
    ("url", "kind", "host", "path"),
    [
        ("git@github.com:Acme/Shop.git", "github", "github.com", "Acme/Shop"),
        ("https://github.com/acme/shop", "github", "github.com", "acme/shop"),
        ("https://user:tok3n@github.com/acme/shop.git", "github", "github.com", "acme/shop"),
        ("ssh://git@gitlab.com:22/group/sub/proj.git", "gitlab", "gitlab.com", "group/sub/proj"),
        ("git@gitlab.example.com:team/app.git", "gitlab", "gitlab.example.com", "team/app"),
        ("https://bitbucket.org/acme/shop.git", "local", "bitbucket.org", "acme/shop"),
        ("/srv/git/shop.git", "local", None, None),
        ("../shop", "local", None, None),
        ("file:///srv/git/shop.git", "local", None, None),
    ],
)
def test_remote_urls(url: str, kind: str, host: str | None, path: str | None) -> None:
    parsed = remote.parse_url("origin", url)
    assert (parsed.kind, parsed.host, parsed.path) == (kind, host, path)
    assert "tok3n" not in parsed.url


def test_unreadable_remote_url() -> None:
    with pytest.raises(SpecError, match=r"^git remote 'origin': cannot read a host and path"):
        remote.parse_url("origin", "weird::thing")


def _chosen(remotes: dict[str, str], wanted: str | None) -> remote.Remote:
    found = remote.choose(remotes, wanted)
    assert found is not None
    return found


def test_choose_the_remote() -> None:
    both = {"origin": "git@github.com:a/b.git", "up": "git@gitlab.com:c/d.git"}
    assert _chosen(both, None).name == "origin"
    assert _chosen(both, "up").kind == "gitlab"
    assert _chosen({"up": "git@gitlab.com:c/d.git"}, None).name == "up"
    assert remote.choose({}, None) is None
    with pytest.raises(
        SpecError, match=r"^--remote nope: the repository has no such remote \(known: origin, up\)$"
    ):
        remote.choose(both, "nope")
    with pytest.raises(SpecError, match=r"2 remotes .* and no origin"):
        remote.choose({"a": "/x", "b": "/y"}, None)


def test_destinations() -> None:
    github = remote.destination(remote.parse_url("origin", "git@github.com:Acme/Shop.git"), "x")
    assert (github.host, github.repository("api", alone=False)) == ("ghcr.io", "acme/shop/api")
    assert github.repository("shop", alone=True) == "acme/shop"
    assert github.url == "https://github.com/acme/shop"
    gitlab = remote.destination(remote.parse_url("origin", "git@gitlab.com:G/P.git"), "x")
    assert (gitlab.host, gitlab.prefix, gitlab.username_env) == (
        "registry.gitlab.com",
        "g/p",
        "CI_REGISTRY_USER",
    )
    assert any("$CI_REGISTRY_IMAGE" in line for line in gitlab.note)
    own = remote.destination(remote.parse_url("origin", "git@gitlab.acme.io:t/app.git"), "x")
    assert own.host == "gitlab.acme.io:5050"
    local = remote.destination(None, "My Project")
    assert (local.host, local.prefix, local.project) == ("local", "my-project", "my-project")
    assert "no git remote" in local.note[0]
    other = remote.destination(remote.parse_url("origin", "https://bitbucket.org/a/shop"), "x")
    assert (other.host, other.project) == ("local", "shop")
    assert "neither GitHub nor GitLab" in other.note[0]


def test_image_names_from_folders() -> None:
    root = dockerfiles.parse(P("Dockerfile"), "FROM a\n")
    api = dockerfiles.parse(P("services/api/Dockerfile"), "FROM a\n")
    a = dockerfiles.parse(P("a/web/Dockerfile"), "FROM a\n")
    b = dockerfiles.parse(P("b/web/Dockerfile"), "FROM a\n")
    drafts = render.image_drafts([root, api, a, b], "Shop")
    assert [d.name for d in drafts] == ["shop", "api", "a-web", "b-web"]
    assert [d.context for d in drafts] == [".", "services/api", "a/web", "b/web"]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_rendered_spec_loads_and_says_what_the_dockerfiles_say(tmp_path: Path) -> None:
    files = {
        "api/Dockerfile": APP,
        "worker/Dockerfile": "FROM --platform=linux/amd64 debian:bookworm-slim AS run\nUSER 1\n",
        "web/Containerfile": "FROM debian:bookworm-slim\n",
    }
    root = _tree(tmp_path, files)
    parsed = [dockerfiles.parse(P(n), t) for n, t in files.items()]
    dest = remote.destination(remote.parse_url("origin", "git@github.com:acme/shop.git"), "x")
    text = render.release_py(render.image_drafts(parsed, dest.project), dest, "trunk")
    spec = load_spec(root / "release.py", text).spec
    api, worker, web = spec.images
    assert (api.repository, api.context, api.target, api.test_target, api.base_image_arg) == (
        "acme/shop/api",
        "api",
        "runtime",
        "test",
        "BASE_IMAGE",
    )
    assert worker.platforms == ("linux/amd64",)
    assert api.platforms == ("linux/amd64", "linux/arm64")
    assert (web.dockerfile, web.target) == ("Containerfile", None)
    assert (spec.registry.host, spec.ci.default_branch, spec.url) == (
        "ghcr.io",
        "trunk",
        "https://github.com/acme/shop",
    )
    facts = "# api/Dockerfile: stages base, test, runtime; EXPOSE 8080 9090/udp; USER app:app"
    assert facts in text
    assert text == render.release_py(render.image_drafts(parsed, dest.project), dest, "trunk")


def test_rendered_noxfile_registers_the_sessions() -> None:
    text = render.noxfile_py()
    compile(text, "noxfile.py", "exec")
    assert render.has_sessions(text)
    assert not render.has_sessions("import nox\n")


def test_change_plan() -> None:
    files = {
        P("release.py"): "new\n",
        P("noxfile.py"): render.noxfile_py(),
        P(".gitlab-ci.yml"): "ours\n",
        P(".github/workflows/release.yml"): "same\n",
    }
    existing: dict[PurePosixPath, str | None] = {
        P("release.py"): None,
        P("noxfile.py"): "import nox\n",
        P(".gitlab-ci.yml"): "theirs\n",
        P(".github/workflows/release.yml"): "same\n",
    }
    planned = {c.path.as_posix(): c for c in changes.plan(files, existing)}
    assert {k: c.status for k, c in planned.items()} == {
        "release.py": "create",
        "noxfile.py": "add-lines",
        ".gitlab-ci.yml": "differs",
        ".github/workflows/release.yml": "current",
    }
    assert [k for k, c in planned.items() if c.writes(force=False)] == ["release.py"]
    assert [k for k, c in planned.items() if c.writes(force=True)] == [
        "release.py",
        "noxfile.py",
        ".gitlab-ci.yml",
    ]
    assert planned["noxfile.py"].text == (
        "import nox\n\nfrom pipeline.nox_sessions import register\nregister()\n"
    )
    assert "-theirs\n+ours\n" in planned[".gitlab-ci.yml"].diff()
    registered = changes.plan({P("noxfile.py"): "x"}, {P("noxfile.py"): render.noxfile_py()})
    assert registered[0].status == "current"


def test_advice_names_the_fix() -> None:
    finding = Finding("non_root_user", "error", "api", "api/Dockerfile:3", "runs as USER root")
    line = changes.advice(finding)
    assert line.startswith("api/Dockerfile:3: runs as USER root (the release would stop); fix:")
    assert "USER 10001:10001" in line
    assert set(changes.FIXES) >= {"dockerignore", "non_root_user", "no_secret_args"}


def test_a_gitlab_group_with_a_dot_gives_a_spec_that_loads(tmp_path: Path) -> None:
    """GitLab group and project paths may hold dots ("Path can contain only letters, digits,
    '_', '-' and '.'"): the repository init writes under registry.gitlab.com is a path there,
    not a host, and the spec it renders must load."""
    files = {"Dockerfile": "FROM debian:bookworm-slim\n"}
    root = _tree(tmp_path, files)
    parsed = [dockerfiles.parse(P(n), t) for n, t in files.items()]
    dest = remote.destination(remote.parse_url("origin", "git@gitlab.com:acme.io/shop.git"), "x")
    text = render.release_py(render.image_drafts(parsed, dest.project), dest, "main")
    spec = load_spec(root / "release.py", text).spec
    assert (spec.registry.host, spec.images[0].repository) == (
        "registry.gitlab.com",
        "acme.io/shop",
    )
