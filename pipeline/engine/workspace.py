"""Everything a stage needs for one run, resolved once: spec, context, tags, registry, credentials,
tools, signing identity and where files go.

Resolution rules (documented in the README):
- registry host: `--registry`, then PIPELINE_REGISTRY, then the spec; `local` is the built-in
  loopback registry (started on demand, kept running); its CA: PIPELINE_REGISTRY_CA, then the
  spec's `registry.ca_file`, else the system's;
- credentials: the environment variables the spec names, else the docker config;
- signing key: the variable the spec names (COSIGN_KEY) with COSIGN_PASSWORD; with none set,
  outside CI, a throwaway key pair kept with the built-in registry (said loudly);
- base image: PIPELINE_BASE_IMAGE, else the Dockerfile's default; the built-in base only in the
  sandbox or with PIPELINE_OFFLINE_FIXTURES=1 (`pipeline.engine.inputs`, fail-closed);
- Trivy DB: PIPELINE_TRIVY_DB_REPOSITORY, then the spec, else Trivy's default; the fixture DB only
  in the sandbox or opted in, and a DB marked as the fixture is refused anywhere else;
- Docker Hub names: where the stand-ins are allowed (the sandbox, or opted in), a build that
  cannot reach Docker Hub and whose Dockerfiles use `debian:bookworm[-slim]` gets the sandbox's
  locally built stand-ins (`pipeline.sandbox.hubmirror`), so such a FROM needs no build argument.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import paths, tags, ui
from pipeline.adapters.cosign import Cosign, Identity
from pipeline.adapters.docker_cli import BUILD_TIMEOUT_ENV, DockerCli
from pipeline.adapters.registry import Credentials, RegistryClient, docker_config_credentials
from pipeline.adapters.runner import Runner
from pipeline.adapters.trivy import Trivy
from pipeline.context import ReleaseContext
from pipeline.engine import inputs, signing
from pipeline.engine.signing import Signing
from pipeline.errors import AuthError, SpecError
from pipeline.imagegraph import SpecBase
from pipeline.plan import resolve_registry_host
from pipeline.retry import Attempt
from pipeline.sandbox import local as sandbox
from pipeline.sandbox.cache import cache_dir
from pipeline.secrets import register
from pipeline.spec import LOCAL_REGISTRY, Image, RetryPolicy, Spec, TagPolicy
from pipeline.specload import LoadedSpec
from pipeline.tags import ReleaseSet, TagSet

DEFAULT_BUILD_TIMEOUT = 3600.0  # seconds: a build's deadline unless PIPELINE_BUILD_TIMEOUT says


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
    database: inputs.Database | None = None  # the scan's vulnerability DB (scan runs only)
    fixtures_allowed: bool = False  # the sandbox, or PIPELINE_OFFLINE_FIXTURES=1
    build_timeout: float = DEFAULT_BUILD_TIMEOUT  # seconds a buildx build may take
    # Build arguments per image that replace the spec's (rebuild-check: the release's own).
    build_args_override: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    retries: list[Attempt] = field(default_factory=list)
    # The images this run releases, each with its own tags (a per-image release tag selects one).
    release: ReleaseSet | None = None
    # Guards the state while images run at once (inserts into it, and saving it).
    state_lock: threading.RLock = field(default_factory=threading.RLock)
    # Computed once per run: which spec images each image is built FROM (engine.build), the
    # native builders (engine.builders).
    graph: dict[str, list[SpecBase]] | None = None
    natives: dict[str, Any] | None = None
    # The scan's DB, fetched once per run, and each image's findings (GitLab's report).
    db_lock: threading.Lock = field(default_factory=threading.Lock)
    db_record: dict[str, Any] | None = None
    findings: dict[str, list[Any]] = field(default_factory=dict)
    scan_started: dt.datetime | None = None  # when the run's first scan began (GitLab's report)
    warned_throwaway: bool = False
    # Smoke tests left by the build for the scan to run beside Trivy (a release, one process).
    defer_smoke: bool = False
    failed_step: str | None = None  # the first image step that failed (the report names it)
    smoke_tests: dict[str, Any] = field(default_factory=dict)
    _signing: Signing | None = None

    @property
    def images(self) -> tuple[Image, ...]:
        """The spec's images this run releases (every image unless a release tag selects)."""
        if self.release is None:
            return self.spec.images
        return tuple(i for i in self.spec.images if i.name in self.release.tagsets)

    def image(self, name: str) -> Image:
        return next(i for i in self.spec.images if i.name == name)

    def image_of(self, repository: str) -> Image | None:
        """The spec image pushed to `repository` (host/path, or a path), if any."""
        _, _, path = repository.partition("/")
        return next(
            (i for i in self.spec.images if repository in (i.repository, self.repository(i))),
            next((i for i in self.spec.images if i.repository == path), None),
        )

    def tagset_for(self, image: Image) -> TagSet:
        """The tags `image` gets in this run (its own policy and release tag)."""
        if self.release is not None and image.name in self.release.tagsets:
            return self.release.tagsets[image.name]
        return self.tagset

    def tag_policy(self, image: Image | None) -> TagPolicy:
        return tags.image_policy(self.spec, image) if image is not None else self.spec.tags

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

    def client_for(self, host: str, *, retry: RetryPolicy | None = None) -> RegistryClient:
        """A registry client for `host`: this run's client for the release registry, else one
        with the credentials of this run's docker config and its CA bundle."""
        if host == self.registry_host and retry is None:
            return self.client
        bundle = self.runner.env.get("SSL_CERT_FILE")
        return RegistryClient(
            host,
            credentials=docker_config_credentials(host, self.runner.env),
            ca_file=Path(bundle) if bundle else None,
            retry=retry or self.spec.retry,
            on_retry=self.note_retry,
        )

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


@dataclass(frozen=True)
class _Connection:
    """The release registry as this run reaches it, and the environment every tool needs."""

    host: str
    client: RegistryClient
    tool_env: dict[str, str]


def _sandbox_connection(provisioned: sandbox.Provisioned, spec: Spec) -> _Connection:
    registry = provisioned.registry
    client = RegistryClient(
        registry.host,
        credentials=registry.credentials,
        ca_file=registry.ca_file,
        retry=spec.retry,
    )
    return _Connection(registry.host, client, provisioned.tool_env())


def _connection(
    loaded: LoadedSpec,
    host: str,
    *,
    env: Mapping[str, str],
    scratch: Path,
    provisioned: sandbox.Provisioned | None,
    runner: Runner,
) -> _Connection:
    """A registry of the user's: its CA, its credentials (checked with our client first), and
    a private docker config logged in to it."""
    spec = loaded.spec
    credentials = _credentials(spec, host, env)
    ca_text = env.get("PIPELINE_REGISTRY_CA") or (
        str(loaded.resolve(spec.registry.ca_file)) if spec.registry.ca_file else ""
    )
    ca_file = Path(ca_text) if ca_text else None
    if ca_file is not None and not ca_file.is_file():
        origin = "PIPELINE_REGISTRY_CA" if env.get("PIPELINE_REGISTRY_CA") else "registry.ca_file"
        raise SpecError(f"{origin}: CA file {ca_file} does not exist")
    client = RegistryClient(
        host,
        credentials=credentials,
        ca_file=ca_file,
        retry=spec.retry,
        credentials_hint=credentials_hint(spec, host),
    )
    tool_env: dict[str, str] = {}
    if provisioned is not None and provisioned.ca_bundle is not None:
        tool_env["SSL_CERT_FILE"] = str(provisioned.ca_bundle)
    if ca_file is not None:
        bundle = scratch / "ca-bundle.pem"
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        bundle.write_text((system.read_text() if system.is_file() else "") + ca_file.read_text())
        tool_env["SSL_CERT_FILE"] = str(bundle)
    if credentials is not None and _creds_from_env(spec, env):
        # Log in through a private docker config: buildx, cosign and Trivy share it and the
        # user's own ~/.docker is untouched. It starts as a copy of that config, so credentials
        # for other registries (a private base image) keep working.
        _check_login(spec, client)
        private = scratch / "docker"
        _copy_docker_config(env, private, provisioned)
        tool_env["DOCKER_CONFIG"] = str(private)
        DockerCli(runner.with_env(**tool_env)).login(
            host, credentials.username, credentials.password
        )
    elif provisioned is not None:
        # The built-in base or DB stands in, from the built-in registry, while the images go to
        # the user's registry through their own `docker login`: a private config with both (the
        # sandbox's config alone has no login to the user's registry).
        private = scratch / "docker"
        _copy_docker_config(env, private, provisioned)
        tool_env["DOCKER_CONFIG"] = str(private)
    return _Connection(host, client, tool_env)


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
    seconds = build_timeout(env)  # a bad value is refused before anything runs
    base_runner = Runner(env=env)
    # The sandbox: the spec's built-in registry, not overridden. Only there (or opted in) may
    # the built-in base and the fixture DB stand in for inputs that cannot be reached.
    fixtures = inputs.plan_fixtures(loaded, env, steps, sandbox=host == LOCAL_REGISTRY)
    # A private docker config and CA bundle for this run only, removed however the run ends; a
    # run killed outright leaves its folder, which the next run removes.
    sweep_scratch()
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as scratch_name:
        scratch = Path(scratch_name)
        _claim(scratch)
        provisioned: sandbox.Provisioned | None = None
        wants_local = host == LOCAL_REGISTRY and tagset.publish  # a PR pushes nothing
        if wants_local or fixtures.base or fixtures.db or fixtures.hub:
            with ui.progress("built-in registry, base image and Trivy DB"):
                provisioned = sandbox.up(
                    base_runner,
                    base=fixtures.base,
                    trivy_db=fixtures.db,
                    hub_tags=fixtures.hub,
                    hub_platforms=tuple(sorted({p for i in spec.images for p in i.platforms})),
                )
        if host == LOCAL_REGISTRY and provisioned is not None:
            connection = _sandbox_connection(provisioned, spec)
        else:
            connection = _connection(
                loaded, host, env=env, scratch=scratch, provisioned=provisioned, runner=base_runner
            )
        runner = base_runner.with_env(**connection.tool_env).with_retry(spec.retry)
        db_repository = _db_repository(spec, env, provisioned) if "scan" in steps else None
        workspace = Workspace(
            loaded=loaded,
            context=context,
            tagset=tagset,
            registry_host=connection.host,
            runner=runner,
            client=connection.client,
            environ=env,
            scratch=scratch,
            dist=dist or paths.project_root(loaded.base_dir) / paths.DIST,
            trivy_cache=trivy_cache(db_repository),
            db_repository=db_repository,
            base_image=(
                env.get(inputs.BASE_ENV)
                or (provisioned.base_image if provisioned and fixtures.base else None)
            ),
            sandbox=provisioned,
            signs="sign" in steps,
            fixtures_allowed=fixtures.allowed,
            build_timeout=seconds,
            release=tags.release_set(spec, context),
        )
        workspace.client.on_retry = workspace.note_retry
        workspace.runner.on_retry = workspace.note_retry
        if "scan" in steps:
            workspace.trivy().check()  # the pinned scanner, before anything is built
            # Read from its registry before anything is built: a fixture DB is refused outside
            # the sandbox (unless opted in).
            workspace.database = inputs.database(
                db_repository,
                workspace.client_for,
                allowed=fixtures.allowed,
                from_sandbox=fixtures.db,
            )
        yield workspace


def build_timeout(environ: Mapping[str, str]) -> float:
    """Seconds a build may take before it is killed ($PIPELINE_BUILD_TIMEOUT, default an hour):
    a Docker host that stops answering (SIGSTOP, a network partition) otherwise hangs buildx for
    ever, with the connection open."""
    text = environ.get(BUILD_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_BUILD_TIMEOUT
    if not text.isdigit() or int(text) == 0:
        raise SpecError(f"{BUILD_TIMEOUT_ENV}: {text!r} is not a whole number of seconds above 0")
    return float(text)


SCRATCH_PREFIX = "pipeline-run-"
OWNER_FILE = "owner"


def _owner() -> str:
    """This process, as `pid start-time`: a pid alone may be reused by another process."""
    return f"{os.getpid()} {_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return fields[19] if len(fields) > 19 else ""


def _claim(scratch: Path) -> None:
    """Name this process as the folder's owner, in one rename: a concurrent sweep never reads
    a half-written (empty) owner file and takes the folder for a dead run's."""
    partial = scratch / f".{OWNER_FILE}.partial"
    partial.write_text(_owner())
    partial.replace(scratch / OWNER_FILE)


def _is_live(candidate: Path) -> bool:
    try:
        pid_text, _, started = (candidate / OWNER_FILE).read_text().strip().partition(" ")
    except OSError:
        pid_text, started = "", ""
    if pid_text.isdigit() and started:
        return _start_time(int(pid_text)) == started
    # No owner named yet (the run is starting) or none readable: only an old folder is dead.
    try:
        return time.time() - candidate.stat().st_mtime < 3600
    except OSError:
        return True  # removed meanwhile by its own run


def sweep_scratch(folder: Path | None = None) -> list[Path]:
    """Remove the scratch folders of runs that are gone (killed: their cleanup never ran). A
    folder whose owner still runs is left alone; one with no owner named is only old enough."""
    removed = []
    base = folder or Path(tempfile.gettempdir())
    for candidate in base.glob(f"{SCRATCH_PREFIX}*"):
        if not _is_live(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def with_logins(config: Mapping[str, Any], logins: Mapping[str, Any]) -> dict[str, Any]:
    """A docker config (`config.json`'s data) with the `auths` of `logins` added: the user's
    settings and logins kept, a host both name logged in as `logins` says."""
    merged = dict(config)
    auths = merged.get("auths")
    merged["auths"] = {**(auths if isinstance(auths, dict) else {}), **logins.get("auths", {})}
    return merged


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _copy_docker_config(
    env: Mapping[str, str], target: Path, provisioned: sandbox.Provisioned | None = None
) -> None:
    """The user's docker config, copied into `target`, with the built-in registry's login when
    `provisioned` (a base or DB of the sandbox stands in)."""
    folder = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")
    source = folder / "config.json"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    if provisioned is not None:
        config = with_logins(
            _read_config(source), _read_config(provisioned.docker_config / "config.json")
        )
        (target / "config.json").write_text(json.dumps(config, indent=1))
        (target / "config.json").chmod(0o600)
    elif source.is_file():
        (target / "config.json").write_bytes(source.read_bytes())
        (target / "config.json").chmod(0o600)
    # The user's docker contexts (a native builder may be one) and buildx's builders with the
    # one in use (on GitHub: the builder setup-buildx-action made, which buildx would otherwise
    # not find and fall back to the daemon's `docker` driver), read where they are.
    for state in ("contexts", "buildx"):
        if (folder / state).is_dir():
            (target / state).symlink_to(folder / state, target_is_directory=True)


def trivy_cache(db_repository: str | None) -> Path:
    """One Trivy cache per DB source: a DB fetched from one mirror never shadows another's."""

    key = hashlib.sha256((db_repository or "default").encode()).hexdigest()[:12]
    return cache_dir() / "trivy" / key


def _creds_from_env(spec: Spec, env: Mapping[str, str]) -> bool:
    return bool(
        env.get(spec.registry.username_env or "") and env.get(spec.registry.password_env or "")
    )


def _db_repository(
    spec: Spec, env: Mapping[str, str], provisioned: sandbox.Provisioned | None
) -> str | None:
    explicit = env.get("PIPELINE_TRIVY_DB_REPOSITORY") or spec.scan.db_repository
    if explicit:
        return explicit
    return provisioned.db_repository if provisioned else None
