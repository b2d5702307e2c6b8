"""Everything a stage needs for one run, resolved once: spec, context, tags, registry, credentials,
tools, signing identity and where files go.

Resolution rules (documented in the README):
- registry host: `--registry`, then PIPELINE_REGISTRY, then the spec; `local` is the built-in
  loopback registry (started on demand, kept running); its CA: PIPELINE_REGISTRY_CA, then the
  spec's `registry.ca_file`, else the system's;
- credentials: the environment variables the spec names, else the docker config;
- signing key: the variable the spec names (COSIGN_KEY) with COSIGN_PASSWORD; with none set,
  outside CI, a throwaway key pair kept with the built-in registry (said loudly);
- base image: PIPELINE_BASE_IMAGE, else the Dockerfile's default, else (when that base's registry
  does not resolve: an offline machine) the built-in base;
- Docker Hub names: a build for the built-in registry on an offline machine whose Dockerfiles
  use `debian:bookworm[-slim]` gets the sandbox's locally built stand-ins (`hubmirror`), so
  such a FROM needs no build argument;
- Trivy DB: PIPELINE_TRIVY_DB_REPOSITORY, then the spec, else Trivy's default, else (offline) the
  built-in fixture DB.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import paths, ui
from pipeline.adapters.cosign import Cosign, Identity
from pipeline.adapters.docker_cli import DockerCli
from pipeline.adapters.registry import Credentials, RegistryClient, docker_config_credentials
from pipeline.adapters.runner import Runner
from pipeline.adapters.trivy import Trivy
from pipeline.context import ReleaseContext
from pipeline.engine import signing
from pipeline.engine.signing import Signing
from pipeline.errors import AuthError, SpecError
from pipeline.plan import resolve_registry_host
from pipeline.preflight import parse_stages
from pipeline.refs import split_host
from pipeline.retry import Attempt
from pipeline.sandbox import hubmirror
from pipeline.sandbox import local as sandbox
from pipeline.sandbox.cache import cache_dir
from pipeline.secrets import register
from pipeline.spec import LOCAL_REGISTRY, Image, Spec
from pipeline.specload import LoadedSpec
from pipeline.tags import TagSet

TRIVY_DEFAULT_DB_HOST = "mirror.gcr.io"
DOCKER_HUB = "registry-1.docker.io"


@dataclass
class Workspace:
    loaded: LoadedSpec
    context: ReleaseContext
    tagset: TagSet
    registry_host: str
    runner: Runner  # environment for every tool: DOCKER_CONFIG, SSL_CERT_FILE
    client: RegistryClient
    environ: dict[str, str]
    scratch: Path  # private to this run, removed when it ends
    dist: Path
    trivy_cache: Path
    db_repository: str | None
    base_image: str | None  # the built-in base when the default cannot be pulled
    sandbox: sandbox.Provisioned | None = None
    signs: bool = False  # the run signs (else it only verifies with the public key)
    retries: list[Attempt] = field(default_factory=list)
    _signing: Signing | None = None

    @property
    def signing(self) -> Signing:
        """Resolved on first use: a build or scan never touches keys."""
        if self._signing is None:
            self._signing = signing.resolve(
                self.spec, self.environ, self.runner, self.scratch, signs=self.signs
            )
        return self._signing

    @property
    def identity(self) -> Identity:
        return self.signing.identity

    @property
    def throwaway_key(self) -> bool:
        return self._signing is not None and self._signing.throwaway

    @property
    def spec(self) -> Spec:
        return self.loaded.spec

    @property
    def push(self) -> bool:
        """Pull requests build and scan only: nothing is pushed, signed or tagged."""
        return self.tagset.publish

    def repository(self, image: Image) -> str:
        return f"{self.registry_host}/{image.repository}"

    def docker(self) -> DockerCli:
        return DockerCli(self.runner)

    def trivy(self) -> Trivy:
        return Trivy(self.runner)

    def cosign(self) -> Cosign:
        return Cosign(self.runner.with_env(**self.signing.cosign_env))

    def note_retry(self, attempt: Attempt) -> None:
        self.retries.append(attempt)
        ui.warn(f"retry {attempt.number} in {attempt.wait:.1f}s: {attempt.reason}")

    def path(self, relative: object) -> Path:
        return self.dist.parent / str(relative)


def _credentials(spec: Spec, host: str, environ: Mapping[str, str]) -> Credentials | None:
    user_env, pass_env = spec.registry.username_env, spec.registry.password_env
    user = environ.get(user_env or "", "")
    password = environ.get(pass_env or "", "")
    register(password)
    if user and password:
        return Credentials(user, password)
    if bool(user) != bool(password):
        missing = user_env if not user else pass_env
        raise SpecError(
            f"registry.{'username_env' if not user else 'password_env'}: {missing} is not set"
        )
    return docker_config_credentials(host, environ)


def credentials_hint(spec: Spec, host: str) -> str:
    """Where this run's registry credentials come from, named for a refusal's error line."""
    user_env, pass_env = spec.registry.username_env, spec.registry.password_env
    if user_env and pass_env:
        return (
            f"{user_env} and {pass_env}, the spec's registry.username_env/password_env; "
            f"unset, `docker login {host}`"
        )
    return f"`docker login {host}`, or name the variables in registry.username_env/password_env"


def _check_login(spec: Spec, client: RegistryClient) -> None:
    """Try the credentials with our own client before any tool logs in: a refusal is then one
    clear line naming the variables, not a tool's confusing fallback error."""
    try:
        client.check_login()
    except AuthError as exc:
        who = client.credentials.username if client.credentials else "?"
        raise AuthError(
            f"registry {client.host} refused user {who!r} with the password from "
            f"{spec.registry.password_env} (registry.password_env): {exc.message}"
        ) from None


def resolves(host: str) -> bool:
    """Whether a registry's name resolves: a DNS question only, nothing is sent to it."""
    name, _ = split_host(host)
    try:
        socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return True


def default_base(dockerfile: Path, arg: str) -> str | None:
    """An ARG's default in the Dockerfile (`ARG BASE_IMAGE=python:3.12-slim`)."""
    if not dockerfile.is_file():
        return None
    for line in dockerfile.read_text().splitlines():
        text = line.strip()
        if text.upper().startswith("ARG ") and text[4:].strip().startswith(f"{arg}="):
            return text[4:].strip().split("=", 1)[1].strip().strip('"')
    return None


def default_base_host(dockerfile: Path, arg: str) -> str | None:
    """The registry of an ARG's default (`ARG BASE_IMAGE=python:3.12-slim`: docker.io)."""
    ref = default_base(dockerfile, arg)
    if ref is None:
        return None
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


@contextlib.contextmanager
def open_workspace(
    loaded: LoadedSpec,
    context: ReleaseContext,
    tagset: TagSet,
    *,
    registry_override: str | None = None,
    environ: Mapping[str, str] | None = None,
    dist: Path | None = None,
    steps: frozenset[str] = frozenset(),
) -> Iterator[Workspace]:
    """Resolve everything for a run; the isolated docker config is removed when it ends.

    `steps` says what the run will do, so only a build looks for a base image and only a scan
    for a Trivy DB.
    """
    env = dict(os.environ if environ is None else environ)
    spec = loaded.spec
    host = resolve_registry_host(spec, registry_override, env)
    base_runner = Runner(env=env)
    hub = _hub_tags(loaded, host, steps)
    need_base_fallback = "build" in steps and _needs_local_base(loaded, env, hub_served=bool(hub))
    need_db_fallback = "scan" in steps and _needs_local_db(spec, env)
    # A private docker config and CA bundle for this run only, removed however the run ends.
    with tempfile.TemporaryDirectory(prefix="pipeline-run-") as scratch_name:
        scratch = Path(scratch_name)
        wants_local = host == LOCAL_REGISTRY and tagset.publish  # a PR pushes nothing
        provisioned = (
            _sandbox(spec, base_runner, need_base_fallback, need_db_fallback, hub)
            if wants_local or need_base_fallback or need_db_fallback or hub
            else None
        )
        if host == LOCAL_REGISTRY and provisioned is not None:
            host = provisioned.registry.host
            credentials = provisioned.registry.credentials
            ca_file = provisioned.registry.ca_file
            client = RegistryClient(
                host, credentials=credentials, ca_file=ca_file, retry=spec.retry
            )
            tool_env = provisioned.tool_env()
        else:
            credentials = _credentials(spec, host, env)
            ca_text = env.get("PIPELINE_REGISTRY_CA") or (
                str(loaded.resolve(spec.registry.ca_file)) if spec.registry.ca_file else ""
            )
            ca_file = Path(ca_text) if ca_text else None
            if ca_file is not None and not ca_file.is_file():
                origin = (
                    "PIPELINE_REGISTRY_CA"
                    if env.get("PIPELINE_REGISTRY_CA")
                    else "registry.ca_file"
                )
                raise SpecError(f"{origin}: CA file {ca_file} does not exist")
            client = RegistryClient(
                host,
                credentials=credentials,
                ca_file=ca_file,
                retry=spec.retry,
                credentials_hint=credentials_hint(spec, host),
            )
            tool_env = {}
            if provisioned is not None and provisioned.ca_bundle is not None:
                tool_env["SSL_CERT_FILE"] = str(provisioned.ca_bundle)
            if ca_file is not None:
                bundle = scratch / "ca-bundle.pem"
                system = Path("/etc/ssl/certs/ca-certificates.crt")
                bundle.write_text(
                    (system.read_text() if system.is_file() else "") + ca_file.read_text()
                )
                tool_env["SSL_CERT_FILE"] = str(bundle)
            if credentials is not None and _creds_from_env(spec, env):
                # Log in through a private docker config: buildx, cosign and Trivy share it and
                # the user's own ~/.docker is untouched. It starts as a copy of that config, so
                # credentials for other registries (a private base image) keep working.
                _check_login(spec, client)
                private = scratch / "docker"
                _copy_docker_config(env, private)
                tool_env["DOCKER_CONFIG"] = str(private)
                DockerCli(base_runner.with_env(**tool_env)).login(
                    host, credentials.username, credentials.password
                )
            elif provisioned is not None:
                # Still need to pull the built-in base from the built-in registry.
                tool_env.setdefault("DOCKER_CONFIG", str(provisioned.docker_config))
        runner = base_runner.with_env(**tool_env).with_retry(spec.retry)
        dist = dist or paths.project_root(loaded.base_dir) / paths.DIST
        workspace = Workspace(
            loaded=loaded,
            context=context,
            tagset=tagset,
            registry_host=host,
            runner=runner,
            client=client,
            environ=env,
            scratch=scratch,
            dist=dist,
            trivy_cache=trivy_cache(_db_repository(spec, env, provisioned)),
            db_repository=_db_repository(spec, env, provisioned),
            base_image=(
                env.get("PIPELINE_BASE_IMAGE")
                or (provisioned.base_image if provisioned and need_base_fallback else None)
            ),
            sandbox=provisioned,
            signs="sign" in steps,
        )
        workspace.client.on_retry = workspace.note_retry
        workspace.runner.on_retry = workspace.note_retry
        yield workspace


def _sandbox(
    spec: Spec, runner: Runner, base: bool, trivy_db: bool, hub: tuple[str, ...]
) -> sandbox.Provisioned:
    with ui.progress("built-in registry, base image and Trivy DB"):
        return sandbox.up(
            runner,
            base=base,
            trivy_db=trivy_db,
            hub_tags=hub,
            hub_platforms=tuple(sorted({p for image in spec.images for p in image.platforms})),
        )


def _copy_docker_config(env: Mapping[str, str], target: Path) -> None:
    source = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    if source.is_file():
        (target / "config.json").write_bytes(source.read_bytes())
        (target / "config.json").chmod(0o600)


def trivy_cache(db_repository: str | None) -> Path:
    """One Trivy cache per DB source: a DB fetched from one mirror never shadows another's."""

    key = hashlib.sha256((db_repository or "default").encode()).hexdigest()[:12]
    return cache_dir() / "trivy" / key


def _creds_from_env(spec: Spec, env: Mapping[str, str]) -> bool:
    return bool(
        env.get(spec.registry.username_env or "") and env.get(spec.registry.password_env or "")
    )


def _needs_local_base(
    loaded: LoadedSpec, env: Mapping[str, str], *, hub_served: bool = False
) -> bool:
    if env.get("PIPELINE_BASE_IMAGE"):
        return False
    for image in loaded.spec.images:
        if not image.base_image_arg or image.base_image_arg in image.build_args:
            continue
        dockerfile = loaded.resolve(image.context) / image.dockerfile
        if hub_served and hubmirror.hub_tag(default_base(dockerfile, image.base_image_arg) or ""):
            continue  # the stand-in mirror serves the Dockerfile's own default
        host = default_base_host(dockerfile, image.base_image_arg)
        if host and not resolves(host):
            return True
    return False


def _hub_tags(loaded: LoadedSpec, host: str, steps: frozenset[str]) -> tuple[str, ...]:
    """For a build for the built-in registry: the `debian` tags its Dockerfiles build FROM that
    the sandbox can make, when Docker Hub cannot be reached (else none: the real ones are
    pulled)."""
    if "build" not in steps or host != LOCAL_REGISTRY:
        return ()
    bases: list[str] = []
    for image in loaded.spec.images:
        dockerfile = loaded.resolve(image.context) / image.dockerfile
        if dockerfile.is_file():
            stages = parse_stages(dockerfile.read_text(), image.build_args)
            bases += [stage.base for stage in stages]
    tags = hubmirror.hub_tags(bases)
    return tags if tags and not resolves(DOCKER_HUB) else ()


def _needs_local_db(spec: Spec, env: Mapping[str, str]) -> bool:
    if env.get("PIPELINE_TRIVY_DB_REPOSITORY") or spec.scan.db_repository:
        return False
    return not resolves(TRIVY_DEFAULT_DB_HOST)


def _db_repository(
    spec: Spec, env: Mapping[str, str], provisioned: sandbox.Provisioned | None
) -> str | None:
    explicit = env.get("PIPELINE_TRIVY_DB_REPOSITORY") or spec.scan.db_repository
    if explicit:
        return explicit
    return provisioned.db_repository if provisioned else None
