"""The inputs a run takes from outside, decided fail-closed: the base image and the Trivy DB.

The sandbox's stand-ins (the built-in Debian base, the fixture Trivy DB, the locally built
Docker Hub `debian` images) are used only in the sandbox (the spec's registry is the built-in
`local` one and no other registry was asked for) or with the explicit opt-in
`PIPELINE_OFFLINE_FIXTURES=1`, which is announced. Otherwise an unreachable DB host or base image
is one `error:` line naming what could not be reached and how to point at a mirror, before
anything is built or pushed. A DB artifact that carries the fixture mark is refused the same way,
wherever it is served from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import ui
from pipeline.adapters.registry import RegistryClient
from pipeline.errors import EnvironmentProblem, PipelineError
from pipeline.preflight import parse_stages
from pipeline.refs import ImageRef, split_host
from pipeline.sandbox import hubmirror
from pipeline.sandbox.trivydb import DB_TAG, FIXTURE_ANNOTATION
from pipeline.specload import LoadedSpec

FIXTURES_ENV = "PIPELINE_OFFLINE_FIXTURES"
DB_ENV = "PIPELINE_TRIVY_DB_REPOSITORY"
BASE_ENV = "PIPELINE_BASE_IMAGE"
TRIVY_DEFAULT_DB = "mirror.gcr.io/aquasec/trivy-db:2"
TRIVY_DEFAULT_DB_HOST = "mirror.gcr.io"


def opted_in(env: Mapping[str, str]) -> bool:
    return env.get(FIXTURES_ENV) == "1"


def resolves(host: str) -> bool:
    """Whether a registry's name resolves: a DNS question only, nothing is sent to it."""
    name, _ = split_host(host)
    try:
        socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return True


def default_base(dockerfile: Path, arg: str) -> str | None:
    """The default of `ARG <arg>=…` in a Dockerfile (`python:3.12-slim`), if it has one."""
    if not dockerfile.is_file():
        return None
    for line in dockerfile.read_text().splitlines():
        text = line.strip()
        if text.upper().startswith("ARG ") and text[4:].strip().startswith(f"{arg}="):
            return text[4:].strip().split("=", 1)[1].strip().strip('"') or None
    return None


def registry_of(reference: str) -> str:
    """The registry a reference is pulled from (`python:3.12-slim`: Docker Hub)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


@dataclass(frozen=True)
class Unreachable:
    image: str
    arg: str
    reference: str
    host: str


def unreachable_bases(loaded: LoadedSpec, env: Mapping[str, str]) -> list[Unreachable]:
    """Images whose base comes from the Dockerfile's default and whose registry does not resolve.
    A base given in `PIPELINE_BASE_IMAGE` or the image's build args is the user's choice."""
    if env.get(BASE_ENV):
        return []
    found = []
    for image in loaded.spec.images:
        if not image.base_image_arg or image.base_image_arg in image.build_args:
            continue
        dockerfile = loaded.resolve(image.context) / image.dockerfile
        reference = default_base(dockerfile, image.base_image_arg)
        if reference is None:
            continue
        host = registry_of(reference)
        if not resolves(host):
            found.append(Unreachable(image.name, image.base_image_arg, reference, host))
    return found


def hub_tags(loaded: LoadedSpec) -> tuple[str, ...]:
    """The `debian` tags the spec's Dockerfiles build FROM (ARG defaults and build args
    resolved) that the sandbox can make, when Docker Hub cannot be reached; else none."""
    bases: list[str] = []
    for image in loaded.spec.images:
        dockerfile = loaded.resolve(image.context) / image.dockerfile
        if dockerfile.is_file():
            bases += [s.base for s in parse_stages(dockerfile.read_text(), image.build_args)]
    tags = hubmirror.hub_tags(bases)
    return tags if tags and not resolves(registry_of("debian")) else ()


def explicit_db(loaded: LoadedSpec, env: Mapping[str, str]) -> str | None:
    return env.get(DB_ENV) or loaded.spec.scan.db_repository


@dataclass(frozen=True)
class FixturePlan:
    """Which stand-ins a run uses (and whether it may)."""

    allowed: bool  # in the sandbox, or opted in
    base: bool  # the built-in base replaces an unreachable default base
    db: bool  # the fixture DB replaces an unreachable default DB
    hub: tuple[str, ...] = ()  # `debian` tags the Docker Hub stand-ins serve (hubmirror)


def plan_fixtures(
    loaded: LoadedSpec,
    env: Mapping[str, str],
    steps: frozenset[str],
    *,
    sandbox: bool,
) -> FixturePlan:
    """Decide the stand-ins before anything runs; refuse (exit 5) where they are not allowed."""
    allowed = sandbox or opted_in(env)
    hub = hub_tags(loaded) if allowed and "build" in steps else ()
    bases = unreachable_bases(loaded, env) if "build" in steps else []
    # A default base the Docker Hub stand-ins serve builds as the Dockerfile says.
    bases = [b for b in bases if not (hub and hubmirror.hub_tag(b.reference))]
    db = "scan" in steps and explicit_db(loaded, env) is None
    db = db and not resolves(TRIVY_DEFAULT_DB_HOST)
    if not allowed:
        if bases:
            first = bases[0]
            raise EnvironmentProblem(
                f"image {first.image}: its base {first.reference} (ARG {first.arg}) is on "
                f"{first.host}, which cannot be reached; point {first.arg} at a mirror "
                f"({BASE_ENV}=host/repo@sha256:…, or the image's build_args), or set "
                f"{FIXTURES_ENV}=1 to build on the built-in Debian base (never for a real "
                "release); nothing was built"
            )
        if db:
            raise EnvironmentProblem(
                f"the Trivy DB host {TRIVY_DEFAULT_DB_HOST} cannot be reached; set {DB_ENV} "
                "(or scan.db_repository) to a mirror of aquasec/trivy-db, or "
                f"{FIXTURES_ENV}=1 to scan with the fixture DB (never for a real release); "
                "nothing was built"
            )
    plan = FixturePlan(allowed=allowed, base=bool(bases), db=db, hub=hub)
    if (plan.base or plan.db) and not sandbox:
        used = " and ".join(
            part
            for part, on in (("the built-in base", plan.base), ("the fixture DB", plan.db))
            if on
        )
        ui.warn(f"{FIXTURES_ENV}=1: {used} stand in for unreachable inputs; not a real release")
    return plan


@dataclass(frozen=True)
class Database:
    """Where the run's vulnerability DB comes from, recorded in the report and the attestation."""

    source: str  # repository Trivy pulls (`--db-repository`), or its default
    repository: str | None  # what `--db-repository` gets (None: Trivy's default)
    digest: str | None  # the artifact's manifest digest, when read from the registry
    fixture: bool

    def record(self, cache: Path) -> dict[str, Any]:
        """The DB's facts after Trivy fetched it: source, digest, UpdatedAt, fixture."""
        metadata: dict[str, Any] = {}
        with contextlib.suppress(OSError, json.JSONDecodeError):
            metadata = json.loads((cache / "db" / "metadata.json").read_text())
        digest = self.digest
        database = cache / "db" / "trivy.db"
        if digest is None and database.is_file():
            digest = "sha256:" + hashlib.sha256(database.read_bytes()).hexdigest()
        return {
            "source": self.source,
            "digest": digest,
            "updated_at": metadata.get("UpdatedAt"),
            "fixture": self.fixture,
        }


def database(
    repository: str | None, client_for: Any, *, allowed: bool, from_sandbox: bool
) -> Database:
    """The DB a scan uses; an artifact marked as the fixture is refused unless allowed.

    `client_for(host)` gives a RegistryClient for the DB's registry (the run's credentials)."""
    if repository is None:
        return Database(TRIVY_DEFAULT_DB, None, None, fixture=False)
    ref = ImageRef.parse(repository, argument=DB_ENV)
    tag = ref.tag or DB_TAG
    digest: str | None = None
    fixture = from_sandbox
    if ref.host is not None:
        client: RegistryClient = client_for(ref.host)
        try:
            manifest = client.resolve(ref.repository, ref.digest or tag)
        except PipelineError:
            manifest = None  # Trivy says why when it cannot fetch it
        if manifest is not None:
            digest = manifest.digest
            annotations = manifest.document.get("annotations") or {}
            fixture = fixture or annotations.get(FIXTURE_ANNOTATION) == "true"
    if fixture and not allowed:
        raise EnvironmentProblem(
            f"{DB_ENV}: {repository} is the fixture Trivy DB (planted advisories, no real "
            f"data); point it at a mirror of aquasec/trivy-db, or set {FIXTURES_ENV}=1 "
            "outside a real release; nothing was built"
        )
    return Database(f"{ref.name}:{tag}", repository, digest, fixture)
