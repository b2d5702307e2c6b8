"""What the container fidelity tests run CI jobs with: a registry containers can reach, the job
image released by the project's own pipeline, the docker-in-docker image, gitlab-ci-local's
helper images.

- `bridge_registry(folder)`: a TLS + password `docker-registry` on the address of the host's
  default-route interface (a container cannot reach the host's loopback, where the bench
  registries listen, and inside a dind service 172.17.0.1 is dind's own bridge), its
  certificate for that address; `provision()` then trusts it in the host dockerd, logs in and
  fills it with the base image and the fixture Trivy DB, as for the bench;
- `release_job_image(...)`: in a clone of this project, the tool's wheel is built
  (reproducible: SOURCE_DATE_EPOCH is the commit time), `pipeline workflows --find-links` puts
  its hash into pipeline.lock (offline), `images/runner/prepare.py` downloads the locked wheels,
  and `pipeline release --spec images/runner/release.py` builds, scans, signs and publishes the
  job image: the same lock the clone's generated CI checks in every job;
- `dind_image(...)`, `wait_image(...)`, `helper_image(...)`: built once with buildx and kept in
  the host's image store under a tag that is the hash of their inputs (as the base image is),
  pushed where needed;
- `buildkit_image(...)`: the same for the image buildx's `docker-container` driver runs (the
  stand-in for moby/buildkit), from the buildkitd and buildctl that tests/support/buildkitd.py
  builds; its tag is keyed by the two binaries' sha256 too.

The heavy layers of the job image (apt, the locked wheels) stay in the host daemon's BuildKit
cache between runs, keyed by their inputs; a cold run builds them once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.adapters.pip import pip_command
from pipeline.adapters.runner import Runner
from pipeline.oci import platform_digests
from pipeline.refs import DigestRef
from pipeline.sandbox import baseimage
from pipeline.sandbox.local import Provisioned, provision
from pipeline.sandbox.registry import RegistryServer, free_port
from pipeline.secrets import register
from tests.support.buildkitd import ensure_buildkit_binaries
from tests.support.release_repo import ReleaseRepo

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "ci-images"


def _address_of(device: str) -> str:
    out = subprocess.run(
        ["ip", "-4", "-json", "addr", "show", device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return str(json.loads(out)[0]["addr_info"][0]["local"])


# docker-in-docker's own dockerd makes its bridge on docker's default 172.17.0.0/16 inside the
# service container: there the host's docker0 address (172.17.0.1) is dind's own bridge.
DIND_BRIDGE = ipaddress.ip_network("172.17.0.0/16")


def host_address() -> str:
    """An address of this machine that every container reaches, dind's builds included: that of
    the interface with the default route (not docker0, which dind's own bridge shadows)."""
    out = subprocess.run(
        ["ip", "-4", "-json", "route", "show", "default"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    routes = json.loads(out)
    if routes and routes[0].get("dev"):
        address = _address_of(str(routes[0]["dev"]))
        if ipaddress.ip_address(address) not in DIND_BRIDGE:
            return address
    # No default route (an offline machine): any global address outside docker's bridges.
    for interface in json.loads(
        subprocess.run(
            ["ip", "-4", "-json", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    ):
        if str(interface.get("ifname", "")).startswith(("docker", "br-", "veth")):
            continue
        for info in interface.get("addr_info", []):
            address = str(info.get("local", ""))
            if address and ipaddress.ip_address(address) not in DIND_BRIDGE:
                return address
    raise AssertionError(f"no address outside {DIND_BRIDGE} for the CI registry: {out!r}")


def _tls(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `address`, made now."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pipeline CI-container CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def bridge_registry(folder: Path, runner: Runner) -> RegistryServer:
    """A TLS + password registry on `host_address()`, reachable from every container."""
    folder.mkdir(parents=True, exist_ok=True)
    address = host_address()
    host = f"{address}:{free_port()}"
    ca_file, cert, key = _tls(folder / "tls", address)
    password = secrets.token_urlsafe(18)
    register(password)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    (folder / "htpasswd").write_text(f"ci:{hashed}\n")
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(folder / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": host, "tls": {"certificate": str(cert), "key": str(key)}},
        "auth": {"htpasswd": {"realm": "ci", "path": str(folder / "htpasswd")}},
    }
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    process = runner.spawn(
        ["docker-registry", "serve", str(folder / "config.yml")], log=folder / "registry.log"
    )
    server = RegistryServer(
        host=host,
        folder=folder,
        pid=process.pid,
        ca_file=ca_file,
        username="ci",
        password=password,
        process=process,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"https://{host}/v2/", verify=str(ca_file), timeout=2)
            if answer.status_code == 401:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"the bridge registry on {host} did not answer")


def provision_bridge(registry: RegistryServer, folder: Path, runner: Runner) -> Provisioned:
    return provision(registry, folder, runner, base=True, trivy_db=True)


def _key(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if item.is_file() and "__pycache__" not in item.parts:
                digest.update(item.relative_to(ROOT).as_posix().encode() + b"\0")
                digest.update(item.read_bytes())
    return digest.hexdigest()[:16]


def _local_base() -> str:
    """The built-in base for amd64, as the host's image store holds it."""
    arch = "amd64"
    return f"pipeline-base/{baseimage.SUITE}:{arch}-{baseimage.cache_key(arch)}"


def _image_exists(name: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False)
    return found.returncode == 0


def _build(name: str, dockerfile: Path, context: Path, runner: Runner) -> str:
    if not _image_exists(name):
        runner.run(
            [
                "docker",
                "buildx",
                "build",
                "--platform",
                "linux/amd64",
                "--file",
                str(dockerfile),
                "--build-arg",
                f"BASE_IMAGE={_local_base()}",
                "--tag",
                name,
                "--load",
                str(context),
            ],
            timeout=1800,
        )
    return name


def dind_image(runner: Runner) -> str:
    """images/dind for amd64, in the host's image store (a tag keyed by its inputs)."""
    key = _key(
        ROOT / "images" / "dind", ROOT / "images" / "runner" / "apt-suites.py", extra=_local_base()
    )
    return _build(f"pipeline-ci/dind:{key}", ROOT / "images/dind/Dockerfile", ROOT, runner)


def wait_image(runner: Runner) -> str:
    """gitlab-ci-local's service-wait image (it waits for a TCP port), made from the base."""
    key = _key(DATA / "wait", extra=_local_base())
    return _build(f"pipeline-ci/wait:{key}", DATA / "wait" / "Dockerfile", DATA / "wait", runner)


def helper_image(runner: Runner) -> str:
    """gitlab-ci-local's helper image (the build volume's modes, and copying artifacts out of it
    with bash and rsync), made from the base."""
    key = _key(DATA / "helper", extra=_local_base())
    return _build(
        f"pipeline-ci/helper:{key}", DATA / "helper" / "Dockerfile", DATA / "helper", runner
    )


def buildkit_image(runner: Runner) -> str:
    """What buildx's `docker-container` driver runs, for amd64, in the host's image store: the
    base with Debian's runc, and buildkitd (the entrypoint) and buildctl from the cached build
    of Debian's docker.io source (data/ci-images/buildkit/Dockerfile says what the driver needs
    of it). The build context is the cache's bin folder; the tag is keyed by the Dockerfile, the
    base and the sha256 of each binary, so a rebuilt binary makes a new image."""
    binaries = ensure_buildkit_binaries(runner)
    digests = [f"{name}={sha256}" for name, sha256 in binaries.digests().items()]
    key = _key(DATA / "buildkit", extra="\n".join([_local_base(), *digests]))
    return _build(
        f"pipeline-ci/buildkit:{key}",
        DATA / "buildkit" / "Dockerfile",
        binaries.buildkitd.parent,
        runner,
    )


def push_by_digest(
    local: str, registry: RegistryServer, repository: str, runner: Runner, docker_config: Path
) -> str:
    """Push a local image to `registry` and return `host/repository@sha256:…`."""
    target = f"{registry.host}/{repository}:ci"
    tools = runner.with_env(DOCKER_CONFIG=str(docker_config))
    tools.run(["docker", "tag", local, target], quiet=True)
    tools.run(["docker", "push", "--quiet", target], quiet=True, timeout=900)
    digest = registry.client().digest_of(repository, "ci")
    assert digest, f"{target} was pushed, yet has no digest"
    return f"{registry.host}/{repository}@{digest}"


def build_tool_wheel(repo: ReleaseRepo, out: Path) -> Path:
    """The tool's wheel from the checkout at `repo` (SOURCE_DATE_EPOCH: its commit time)."""
    out.mkdir(parents=True, exist_ok=True)
    epoch = repo.git("log", "-1", "--format=%ct")
    subprocess.run(
        [
            *pip_command(),
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(repo.path),
        ],
        check=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        timeout=600,
    )
    (wheel,) = out.glob("pipeline_release-*.whl")
    return wheel


@dataclass(frozen=True)
class JobImage:
    reference: str  # host/pipeline/runner@sha256:… (the index)
    report: dict[str, object]  # the release's dist/release.json
    seconds: float


def release_job_image(repo: ReleaseRepo, wheels: Path, env: dict[str, str]) -> JobImage:
    """Lock the clone on its own wheel, download the locked wheels, release images/runner."""
    started = time.monotonic()

    def step(*argv: str) -> None:
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-4000:]}"

    step("-m", "pipeline", "workflows", "--find-links", str(wheels))
    digest = hashlib.sha256(next(wheels.glob("*.whl")).read_bytes()).hexdigest()
    assert digest in (repo.path / "pipeline.lock").read_text(), "the lock pins the wheel built"
    if repo.git("status", "--porcelain"):
        repo.commit("lock the tool's wheel built here")
    step("images/runner/prepare.py", "--find-links", str(wheels))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "release", "--spec", "images/runner/release.py"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report = json.loads((repo.path / "dist" / "release.json").read_text())
    (image,) = report["images"]
    return JobImage(
        reference=f"{image['repository']}@{image['index_digest']}",
        report=report,
        seconds=time.monotonic() - started,
    )


def pushed_sizes(registry: RegistryServer, reference: str) -> dict[str, int]:
    """Per platform, the bytes a pull of `repository@index` transfers: the image's config and
    compressed layers (attestation manifests left out)."""
    ref = DigestRef.parse(reference)
    sizes = {}
    with registry.client() as client:
        index = client.resolve(ref.repository, ref.digest_str)
        assert index is not None, reference
        for platform, digest in platform_digests(index.document).items():
            manifest = client.resolve(ref.repository, digest)
            assert manifest is not None, digest
            body = manifest.document
            sizes[platform] = body["config"]["size"] + sum(
                layer["size"] for layer in body["layers"]
            )
    return sizes
