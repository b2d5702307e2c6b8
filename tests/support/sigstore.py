"""A local Sigstore for the tests: a real Fulcio built offline from Debian's sources, fed by our
own OIDC issuer (tests/support/oidc.py), so keyless cosign signing is exercised for real.

- `build_fulcio()` builds Fulcio 1.6.5 from Debian trixie's source package with Go 1.24, both
  fetched with `apt-get download NAME=VERSION` and unpacked into a private root (nothing is
  installed system-wide), and caches the binary under `cache_dir()/fulcio/<key>`, the key
  hashing every input. A second call returns at once.
- `SigstoreBench` starts the issuer and `fulcio serve` (ephemeral CA, no CT log, loopback
  only) and hands out what cosign needs: the Fulcio URL, the trust root, tokens, the environment
  and the flags for an offline sign and verify (no Rekor, no SCT, no TUF).
- `sigstore` is the session fixture (tests/integration/conftest.py imports it).

Issuer types: `email` for email tokens; `ci-provider` with `CIIssuerMetadata` templates for the
GitHub- and GitLab-shaped tokens, so their certificates carry the CI extensions (OIDs
1.3.6.1.4.1.57264.1.*). The templates map our issuer's claims the way github.com's and
gitlab.com's tokens are mapped upstream; the URLs they name (https://github.com/...,
https://gitlab.example/...) are never contacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import pytest
import requests

from pipeline.sandbox.cache import cache_dir
from pipeline.sandbox.registry import free_port
from tests.support.oidc import AUDIENCE, GITLAB_HOST, KINDS, Kind, OIDCIssuer

# -- the build recipe ---------------------------------------------------------------------------

# Bump when the recipe changes in a way the hashed inputs below do not show.
RECIPE_FORMAT = 1
DATA = Path(__file__).parent / "data" / "fulcio"
PACKAGE_LIST = DATA / "go-packages.txt"  # Fulcio's source and the Go libraries it imports
# Applied in order in the root's usr/share/gocode/src with `patch -p1`.
PATCHES = (
    DATA / "fulcio-on-debian.patch",  # builds against Debian's libraries (see its header notes)
    DATA / "fulcio-metrics-on-host.patch",  # the metrics port listens on --host, not on 0.0.0.0
)
GO_VERSION = "1.24"
GO_PACKAGES = (f"golang-{GO_VERSION}-go=1.24.4-1", f"golang-{GO_VERSION}-src=1.24.4-1")
IMPORT_PATH = "github.com/sigstore/fulcio"
# Stripped (-s -w) and path-free (-trimpath): a smaller binary, and the same one for every user.
BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")
BUILD_TIMEOUT = 1800


class FulcioBuildError(RuntimeError):
    pass


def _package_list() -> list[str]:
    lines = PACKAGE_LIST.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def recipe_key() -> str:
    """A hash of every input of the build: a change to any of them is a new cache entry."""
    digest = hashlib.sha256()
    for part in (
        f"format {RECIPE_FORMAT}",
        f"machine {platform.machine()}",
        f"go {' '.join(GO_PACKAGES)}",
        f"flags {' '.join(BUILD_FLAGS)}",
        f"import {IMPORT_PATH}",
        f"packages {' '.join(_package_list())}",
    ):
        digest.update(part.encode() + b"\n")
    for patch in PATCHES:
        digest.update(f"patch {patch.name}\n".encode() + patch.read_bytes())
    return digest.hexdigest()[:20]


def fulcio_cache() -> Path:
    return cache_dir() / "fulcio"


def cached_fulcio() -> Path | None:
    binary = fulcio_cache() / recipe_key() / "fulcio"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One build per key at a time, across processes (the lead's runs and helpers share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str | Path], log: Path, **kwargs: Any) -> None:
    """Run a build step, its output appended to `log`; a failure names the step and the tail."""
    with log.open("ab") as out:
        out.write(f"\n+ {' '.join(map(str, argv))}\n".encode())
        out.flush()
        result = subprocess.run(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
            **kwargs,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2500:]
        raise FulcioBuildError(f"{argv[0]} exited {result.returncode} (log {log}):\n{tail}")


def build_fulcio(*, echo: bool = False) -> Path:
    """The Fulcio binary for this recipe, built into the cache on first use (about 45 s on 2
    cores, most of it compiling), then returned at once.

    Steps: `apt-get download` Go 1.24 and the 65 pinned library packages (trixie must be in the
    apt sources, behind the toolchain's low pin), `dpkg-deb -x` them into a private root, apply
    the patches, `go build` in GOPATH mode with the network off, check the binary runs. All in a
    temporary folder next to the entry, renamed into place at the end: a killed build leaves no
    half entry (its leftovers are removed by the next build)."""
    key = recipe_key()
    cache = fulcio_cache()
    entry = cache / key
    binary = entry / "fulcio"
    if cached_fulcio() is not None:
        return binary
    with _lock(cache / f".{key}.lock"):
        if cached_fulcio() is not None:  # another process built it while we waited
            return binary
        for stale in cache.glob(f".{key}-build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{key}-build-", dir=cache))
        try:
            timings = _build(work, echo=echo)
            out = work / "out"
            (out / "build.json").write_text(
                json.dumps(
                    {
                        "key": key,
                        "recipe_format": RECIPE_FORMAT,
                        "go_packages": list(GO_PACKAGES),
                        "packages": _package_list(),
                        "patches": [p.name for p in PATCHES],
                        "build_flags": list(BUILD_FLAGS),
                        "size_bytes": (out / "fulcio").stat().st_size,
                        "seconds": timings,
                        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                    indent=2,
                )
                + "\n"
            )
            out.rename(entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return binary


def _say(echo: bool, message: str) -> None:
    if echo:
        print(f"[fulcio build] {message}", flush=True)


def _build(work: Path, *, echo: bool) -> dict[str, float]:
    log = work / "build.log"
    debs, root, out = work / "debs", work / "root", work / "out"
    for folder in (debs, root, out):
        folder.mkdir()
    packages = [*GO_PACKAGES, *_package_list()]
    timings: dict[str, float] = {}

    started = time.monotonic()
    apt = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:  # apt drops to _apt, who may not write here: download as root
        apt += ["-o", "APT::Sandbox::User=root"]
    _say(echo, f"apt-get download {len(packages)} packages")
    try:
        _run([*apt, *packages], log, cwd=debs)
    except FulcioBuildError as exc:
        raise FulcioBuildError(
            f"{exc}\n(the packages come from Debian trixie: it must be in the apt sources "
            "behind a low pin, as `nox -s toolchain` sets it up, and `apt-get update` done)"
        ) from None
    files = sorted(debs.glob("*.deb"))
    if len(files) != len(packages):
        raise FulcioBuildError(f"apt-get download gave {len(files)} files for {len(packages)}")
    timings["download"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    _say(echo, f"dpkg-deb -x {len(files)} packages into a private root")
    for deb in files:
        _run(["dpkg-deb", "-x", deb, root], log)
    gopath = root / "usr" / "share" / "gocode"
    for patch in PATCHES:
        _run(["patch", "-p1", "--batch", "--forward", "-d", gopath / "src", "-i", patch], log)
    timings["unpack_and_patch"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    goroot = root / "usr" / "lib" / f"go-{GO_VERSION}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "GOROOT": str(goroot),
        "GOPATH": str(gopath),
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOTELEMETRY": "off",
        "GOFLAGS": "",
        "GOENV": "off",
        "GOCACHE": str(work / "gocache"),
        "GOTMPDIR": str(work),
        "CGO_ENABLED": "1",  # the pkcs11 CA backend links with cgo
    }
    _say(echo, f"go build {IMPORT_PATH} (Go {GO_VERSION} from the private root)")
    # nice: the machine is shared; the build takes both cores for a minute or two.
    go = goroot / "bin" / "go"
    _run(
        ["nice", "-n", "10", go, "build", *BUILD_FLAGS, "-o", out / "fulcio", IMPORT_PATH],
        log,
        env=env,
        cwd=work,
    )
    _run([out / "fulcio", "version"], log)
    timings["compile"] = round(time.monotonic() - started, 1)
    return timings


# -- Fulcio's configuration ---------------------------------------------------------------------

GITHUB_URL = "https://github.com"
GITLAB_URL = f"https://{GITLAB_HOST}"

# Claim -> certificate extension, as Fulcio maps github.com's tokens. A bare word is a claim name;
# `{{ .x }}` a template over the claims and DefaultTemplateValues.
GITHUB_TEMPLATES = {
    "GithubWorkflowTrigger": "event_name",
    "GithubWorkflowSHA": "sha",
    "GithubWorkflowName": "workflow",
    "GithubWorkflowRepository": "repository",
    "GithubWorkflowRef": "ref",
    "BuildSignerURI": "{{ .url }}/{{ .job_workflow_ref }}",
    "BuildSignerDigest": "job_workflow_sha",
    "RunnerEnvironment": "runner_environment",
    "SourceRepositoryURI": "{{ .url }}/{{ .repository }}",
    "SourceRepositoryDigest": "sha",
    "SourceRepositoryRef": "ref",
    "SourceRepositoryIdentifier": "repository_id",
    "SourceRepositoryOwnerURI": "{{ .url }}/{{ .repository_owner }}",
    "SourceRepositoryOwnerIdentifier": "repository_owner_id",
    "BuildConfigURI": "{{ .url }}/{{ .workflow_ref }}",
    "BuildConfigDigest": "workflow_sha",
    "BuildTrigger": "event_name",
    "RunInvocationURI": (
        "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}"
    ),
    "SourceRepositoryVisibilityAtSigning": "repository_visibility",
}
# ... and gitlab.com's. The SAN is the CI config's URL (ci_config_ref_uri has no scheme).
GITLAB_TEMPLATES = {
    "BuildSignerURI": "https://{{ .ci_config_ref_uri }}",
    "BuildSignerDigest": "ci_config_sha",
    "RunnerEnvironment": "runner_environment",
    "SourceRepositoryURI": "{{ .url }}/{{ .project_path }}",
    "SourceRepositoryDigest": "sha",
    "SourceRepositoryRef": (
        'refs/{{ if eq .ref_type "branch" }}heads{{ else }}tags{{ end }}/{{ .ref }}'
    ),
    "SourceRepositoryIdentifier": "project_id",
    "SourceRepositoryOwnerURI": "{{ .url }}/{{ .namespace_path }}",
    "SourceRepositoryOwnerIdentifier": "namespace_id",
    "BuildConfigURI": "https://{{ .ci_config_ref_uri }}",
    "BuildConfigDigest": "ci_config_sha",
    "BuildTrigger": "pipeline_source",
    "RunInvocationURI": "{{ .url }}/{{ .project_path }}/-/jobs/{{ .job_id }}",
    "SourceRepositoryVisibilityAtSigning": "project_visibility",
}


CITypes = Literal["ci-provider", "dedicated"]


def fulcio_config(issuer: OIDCIssuer, ci_types: CITypes = "ci-provider") -> dict[str, Any]:
    """Fulcio's config: one issuer URL per token kind (Fulcio keys issuers by URL).

    `ci-provider` (the default): the generic type, the claim mapping given by the templates
    above. `dedicated`: Fulcio's built-in `github-workflow` and `gitlab-pipeline` types, which
    hard-code https://github.com/ and https://gitlab.com/ as the repository URLs' base."""

    def entry(kind: Kind, **more: str) -> dict[str, str]:
        url = issuer.issuer_url(kind)
        return {"IssuerURL": url, "ClientID": AUDIENCE, **more}

    if ci_types == "dedicated":
        return {
            "OIDCIssuers": {
                issuer.issuer_url("email"): entry("email", Type="email"),
                issuer.issuer_url("github"): entry("github", Type="github-workflow"),
                issuer.issuer_url("gitlab"): entry("gitlab", Type="gitlab-pipeline"),
            }
        }
    return {
        "OIDCIssuers": {
            issuer.issuer_url("email"): entry("email", Type="email"),
            issuer.issuer_url("github"): entry(
                "github", Type="ci-provider", CIProvider="github-workflow"
            ),
            issuer.issuer_url("gitlab"): entry(
                "gitlab", Type="ci-provider", CIProvider="gitlab-pipeline"
            ),
        },
        "CIIssuerMetadata": {
            "github-workflow": {
                "DefaultTemplateValues": {"url": GITHUB_URL},
                "ExtensionTemplates": GITHUB_TEMPLATES,
                "SubjectAlternativeNameTemplate": "{{ .url }}/{{ .job_workflow_ref }}",
            },
            "gitlab-pipeline": {
                "DefaultTemplateValues": {"url": GITLAB_URL},
                "ExtensionTemplates": GITLAB_TEMPLATES,
                "SubjectAlternativeNameTemplate": "https://{{ .ci_config_ref_uri }}",
            },
        },
    }


# -- the bench ----------------------------------------------------------------------------------


def identity_of(claims: dict[str, Any]) -> str:
    """The certificate identity (SAN) Fulcio gives a token with these claims."""
    if "ci_config_ref_uri" in claims:
        return f"https://{claims['ci_config_ref_uri']}"
    if "job_workflow_ref" in claims:
        return f"{GITHUB_URL}/{claims['job_workflow_ref']}"
    return str(claims["email"])


class SigstoreBench:
    """Our OIDC issuer plus a real `fulcio serve` on loopback. `start()`/`stop()` or a context
    manager. Logs and the trust root live in `folder`."""

    def __init__(
        self, folder: Path, *, binary: Path | None = None, ci_types: CITypes = "ci-provider"
    ) -> None:
        self.folder = folder
        self.binary = binary
        self.ci_types: CITypes = ci_types
        self.oidc = OIDCIssuer()
        self.fulcio_url = ""
        self.root_pem = folder / "fulcio-root.pem"
        self.log = folder / "fulcio.log"
        self.tuf_root = folder / "tuf"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tuf_root.mkdir(exist_ok=True)
        self.binary = binary = self.binary or build_fulcio()
        self.oidc.start()  # before Fulcio: it reads each issuer's discovery document at start
        try:
            self._start_fulcio(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fulcio(self, binary: Path) -> None:
        config = self.folder / "fulcio-config.json"
        config.write_text(json.dumps(fulcio_config(self.oidc, self.ci_types), indent=2) + "\n")
        ports = set[int]()
        while len(ports) < 3:
            ports.add(free_port())
        http_port, grpc_port, metrics_port = sorted(ports)
        self.fulcio_url = f"http://127.0.0.1:{http_port}"
        argv = [
            str(binary),
            "serve",
            "--ca",
            "ephemeralca",
            "--config-path",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(http_port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            "--ct-log-url",
            "",
            # An abstract socket: its name must be unique on the machine, never the default.
            "--legacy-unix-domain-socket",
            f"@pipeline-fulcio-{os.getpid()}-{secrets.token_hex(4)}",
        ]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
                start_new_session=True,
            )
        session = requests.Session()
        session.trust_env = False  # loopback: never through a proxy from the environment
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"fulcio exited {self._process.returncode}: "
                    f"{self.log.read_text(errors='replace')[-1500:]}"
                )
            with contextlib.suppress(requests.RequestException):
                response = session.get(f"{self.fulcio_url}/api/v2/trustBundle", timeout=2)
                if response.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"fulcio did not answer on {self.fulcio_url} within 30s")
            time.sleep(0.1)
        chains = response.json()["chains"]
        self.root_pem.write_text("".join(c.rstrip() + "\n" for c in chains[0]["certificates"]))

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=5)
            self._process = None
        self.oidc.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what tests and cosign need -------------------------------------------------------
    def issuer_url(self, kind: Kind) -> str:
        return self.oidc.issuer_url(kind)

    def token(self, kind: Kind, **claims: Any) -> str:
        """A signed ID token of `kind`; see OIDCIssuer.claims for the arguments."""
        return self.oidc.token(kind, **claims)

    def identity(self, kind: Kind, **claims: Any) -> str:
        """The certificate identity a token made with the same arguments gets."""
        return identity_of(self.oidc.claims(kind, **claims))

    def cosign_env(self, base: Mapping[str, str], token: str | None = None) -> dict[str, str]:
        """`base` (e.g. the registry bench's env) made safe for keyless cosign (`clean_env`),
        plus `env(token)`."""
        return {**clean_env(base), **self.env(token)}

    def env(self, token: str | None = None) -> dict[str, str]:
        """The variables cosign needs against this bench (to add to the registry's env): the
        Fulcio root, a TUF cache of its own (never the online mirror), and the token if given
        (SIGSTORE_ID_TOKEN: cosign's `envvar` provider). Add them to an env passed through
        `clean_env` (or use `cosign_env`): stray COSIGN_KEY or ambient tokens change identities."""
        env = {"SIGSTORE_ROOT_FILE": str(self.root_pem), "TUF_ROOT": str(self.tuf_root)}
        if token is not None:
            env["SIGSTORE_ID_TOKEN"] = token
        return env

    def sign_flags(self) -> list[str]:
        """`cosign sign` flags for this bench: no Rekor upload, and no SCT check (there is no CT
        log, so Fulcio's certificate carries none)."""
        return [
            "--yes",
            "--fulcio-url",
            self.fulcio_url,
            "--tlog-upload=false",
            "--insecure-skip-verify",
        ]

    def verify_flags(self, identity: str, issuer: str | Kind) -> list[str]:
        """`cosign verify` flags: the identity and issuer, no Rekor entry, no SCT (the root
        comes from SIGSTORE_ROOT_FILE in env())."""
        issuer_url = self.issuer_url(issuer) if issuer in KINDS else issuer
        return [
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer_url,
            "--insecure-ignore-tlog",
            "--insecure-ignore-sct",
        ]


# Ambient OIDC sources cosign would try before SIGSTORE_ID_TOKEN (a real CI runner has them).
AMBIENT_OIDC_VARIABLES = (
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SIGSTORE_ID_TOKEN",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
    "SPIFFE_ENDPOINT_SOCKET",
)
# cosign reads every flag from COSIGN_<FLAG> too (viper's AutomaticEnv): COSIGN_KEY, which the
# registry bench and the product set, silently turns a keyless `cosign sign` into a key-based
# one and makes a keyless `cosign verify` load the private key as a public key. Only the key's
# password is kept.
KEPT_COSIGN_VARIABLES = ("COSIGN_PASSWORD",)


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without what would make cosign use another identity than the one a test gives it:
    ambient OIDC token sources and COSIGN_<FLAG> variables."""
    return {
        k: v
        for k, v in env.items()
        if k not in AMBIENT_OIDC_VARIABLES
        and (not k.startswith("COSIGN_") or k in KEPT_COSIGN_VARIABLES)
    }


@pytest.fixture(scope="session")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreBench]:
    """Fulcio (built once, cached) and our OIDC issuer, up for the whole session."""
    with SigstoreBench(tmp_path_factory.mktemp("sigstore")) as bench:
        yield bench
