"""The Sigstore bench, proven with the real cosign: keyless signing against a real Fulcio (built
offline from Debian's sources) with tokens from our own OIDC issuer, signatures pushed to the
bench registry, verified by identity and issuer, and by the CI claims Fulcio puts into the
certificate (OIDs 1.3.6.1.4.1.57264.1.*).

Every image here is a tiny one of its own (one small layer pushed through the registry API), so
no test sees another's signatures. Certificates are read back from the signature manifest in the
registry and parsed, not taken from cosign's human output.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import secrets
import subprocess
import tarfile
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from pipeline.adapters.registry import OCI_MANIFEST, Manifest
from pipeline.adapters.runner import Runner
from pipeline.oci import digest_of
from tests.support.bench import Bench
from tests.support.oidc import GITLAB_HOST, Kind
from tests.support.sigstore import SigstoreBench

NO_MATCH = "no matching signatures"
CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
# Fulcio's certificate extensions (the deprecated GitHub ones hold raw strings, the rest DER).
OID = {
    "issuer_v1": "1.3.6.1.4.1.57264.1.1",
    "github_workflow_trigger": "1.3.6.1.4.1.57264.1.2",
    "github_workflow_sha": "1.3.6.1.4.1.57264.1.3",
    "github_workflow_name": "1.3.6.1.4.1.57264.1.4",
    "github_workflow_repository": "1.3.6.1.4.1.57264.1.5",
    "github_workflow_ref": "1.3.6.1.4.1.57264.1.6",
    "issuer": "1.3.6.1.4.1.57264.1.8",
    "build_signer_uri": "1.3.6.1.4.1.57264.1.9",
    "source_repository_uri": "1.3.6.1.4.1.57264.1.12",
    "source_repository_digest": "1.3.6.1.4.1.57264.1.13",
    "source_repository_ref": "1.3.6.1.4.1.57264.1.14",
    "build_config_uri": "1.3.6.1.4.1.57264.1.18",
    "build_trigger": "1.3.6.1.4.1.57264.1.20",
}
RAW_OIDS = {f"1.3.6.1.4.1.57264.1.{n}" for n in range(1, 7)}
GITHUB_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


# -- helpers ------------------------------------------------------------------------------------


def _tiny_image(bench: Bench, repository: str) -> str:
    """Push a one-layer image with unique content; its `host/repo@sha256:...` reference."""
    tar_bytes = io.BytesIO()
    content = f"{repository} {secrets.token_hex(8)}\n".encode()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("label.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(tar_bytes.getvalue())]},
        }
    ).encode()
    client = bench.client()
    client.push_blob(repository, layer)
    client.push_blob(repository, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = client.put_manifest(repository, "tiny", Manifest(digest_of(body), OCI_MANIFEST, body))
    return f"{bench.registry.host}/{repository}@{digest}"


def _cosign(
    bench: Bench, sigstore: SigstoreBench, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """cosign against both benches: the registry's CA and login, the Fulcio root, no ambient
    OIDC token but the ones given in `env`."""
    full = {**sigstore.cosign_env(bench.env()), **env, "PATH": Runner().env["PATH"]}
    return subprocess.run(
        ["cosign", *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _sign(
    bench: Bench, sigstore: SigstoreBench, ref: str, token: str
) -> subprocess.CompletedProcess[str]:
    return _cosign(bench, sigstore, "sign", *sigstore.sign_flags(), ref, SIGSTORE_ID_TOKEN=token)


def _signed(bench: Bench, sigstore: SigstoreBench, ref: str, token: str) -> None:
    result = _sign(bench, sigstore, ref, token)
    assert result.returncode == 0, result.stderr[-3000:]


def _verify(
    bench: Bench, sigstore: SigstoreBench, ref: str, identity: str, issuer: str, *more: str
) -> subprocess.CompletedProcess[str]:
    return _cosign(
        bench,
        sigstore,
        "verify",
        *sigstore.verify_flags(identity, issuer),
        "--output",
        "json",
        *more,
        ref,
    )


def _passes(result: subprocess.CompletedProcess[str], ref: str) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr[-3000:]
    payloads: list[dict[str, Any]] = json.loads(result.stdout)
    digest = ref.rpartition("@")[2]
    assert payloads, result.stdout
    assert {p["critical"]["image"]["docker-manifest-digest"] for p in payloads} == {digest}
    return payloads


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout[-2000:]
    assert NO_MATCH in result.stderr, result.stderr[-3000:]
    return result.stderr


def _signature_layers(bench: Bench, ref: str) -> list[dict[str, Any]]:
    """The layers of the image's cosign signature manifest (`sha256-<hex>.sig`), one per
    signature; none when the image has no signature manifest."""
    name, _, digest = ref.partition("@")
    repository = name.split("/", 1)[1]
    manifest = bench.client().resolve(repository, digest.replace(":", "-") + ".sig")
    return [] if manifest is None else list(manifest.document["layers"])


def _certificates(bench: Bench, ref: str) -> list[x509.Certificate]:
    return [
        x509.load_pem_x509_certificate(layer["annotations"][CERT_ANNOTATION].encode())
        for layer in _signature_layers(bench, ref)
        if CERT_ANNOTATION in layer.get("annotations", {})
    ]


def _der_utf8(raw: bytes) -> str:
    """The text of a DER UTF8String (tag 0x0c, short or long length form)."""
    assert raw[0] == 0x0C, raw[:4]
    length, offset = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(raw[2 : 2 + count]), 2 + count
    return raw[offset : offset + length].decode()


def _extensions(cert: x509.Certificate) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, dotted in OID.items():
        try:
            ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(dotted))
        except x509.ExtensionNotFound:
            continue
        assert isinstance(ext.value, x509.UnrecognizedExtension)
        raw = ext.value.value
        values[name] = raw.decode() if dotted in RAW_OIDS else _der_utf8(raw)
    return values


def _san(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        *san.get_values_for_type(x509.RFC822Name),
        *san.get_values_for_type(x509.UniformResourceIdentifier),
    ]


# -- email identities ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def email_signed(bench: Bench, sigstore: SigstoreBench) -> str:
    ref = _tiny_image(bench, "sigstore/email")
    _signed(bench, sigstore, ref, sigstore.token("email", email="alice@example.com"))
    return ref


def test_keyless_email_signature_verifies(
    bench: Bench, sigstore: SigstoreBench, email_signed: str
) -> None:
    result = _verify(bench, sigstore, email_signed, "alice@example.com", "email")
    (payload,) = _passes(result, email_signed)
    assert payload["optional"]["Subject"] == "alice@example.com"
    assert payload["optional"]["Issuer"] == sigstore.issuer_url("email")
    (cert,) = _certificates(bench, email_signed)
    assert _san(cert) == ["alice@example.com"]
    assert _extensions(cert)["issuer"] == sigstore.issuer_url("email")
    # Issued by the bench's Fulcio: its root signed the certificate.
    root = x509.load_pem_x509_certificate(sigstore.root_pem.read_bytes())
    cert.verify_directly_issued_by(root)


def test_keyless_email_wrong_identity_or_issuer_fails(
    bench: Bench, sigstore: SigstoreBench, email_signed: str
) -> None:
    _refused(_verify(bench, sigstore, email_signed, "mallory@example.com", "email"))
    _refused(_verify(bench, sigstore, email_signed, "alice@example.com", "github"))
    # A regexp that matches nothing fails the same way; one that matches passes.
    _refused(
        _cosign(
            bench,
            sigstore,
            "verify",
            "--certificate-identity-regexp",
            "^bob@",
            "--certificate-oidc-issuer",
            sigstore.issuer_url("email"),
            "--insecure-ignore-tlog",
            "--insecure-ignore-sct",
            email_signed,
        )
    )


def test_an_expired_token_is_refused_by_fulcio(bench: Bench, sigstore: SigstoreBench) -> None:
    ref = _tiny_image(bench, "sigstore/expired")
    for token, reason in (
        (sigstore.token("email", expired=True), "oidc: token is expired"),
        (sigstore.token("email", audience="not-sigstore"), 'expected audience "sigstore"'),
    ):
        logged = sigstore.log.stat().st_size
        result = _sign(bench, sigstore, ref, token)
        assert result.returncode != 0, result.stderr[-2000:]
        # Fulcio's answer, relayed by cosign; Fulcio's log says why.
        assert "retrieving cert" in result.stderr, result.stderr[-2000:]
        assert "There was an error processing the identity token" in result.stderr
        with sigstore.log.open("rb") as log:
            log.seek(logged)
            assert reason in log.read().decode(errors="replace")
    assert _signature_layers(bench, ref) == []  # nothing was pushed


# -- GitHub Actions identities ------------------------------------------------------------------

GITHUB: dict[str, Any] = {"repository": "acme/app", "ref": "refs/tags/v1.2.3", "sha": GITHUB_SHA}


@pytest.fixture(scope="module")
def github_signed(bench: Bench, sigstore: SigstoreBench) -> str:
    ref = _tiny_image(bench, "sigstore/github")
    _signed(bench, sigstore, ref, sigstore.token("github", **GITHUB))
    return ref


def _github_flags(repository: str, ref: str, sha: str = GITHUB_SHA) -> list[str]:
    return [
        "--certificate-github-workflow-repository",
        repository,
        "--certificate-github-workflow-ref",
        ref,
        "--certificate-github-workflow-name",
        "release",
        "--certificate-github-workflow-sha",
        sha,
        "--certificate-github-workflow-trigger",
        "push",
    ]


def test_github_workflow_signature_verifies_with_its_extensions(
    bench: Bench, sigstore: SigstoreBench, github_signed: str
) -> None:
    identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
    assert sigstore.identity("github", **GITHUB) == identity
    result = _verify(
        bench,
        sigstore,
        github_signed,
        identity,
        "github",
        *_github_flags("acme/app", "refs/tags/v1.2.3"),
    )
    (payload,) = _passes(result, github_signed)
    assert payload["optional"]["githubWorkflowRepository"] == "acme/app"
    assert payload["optional"]["githubWorkflowRef"] == "refs/tags/v1.2.3"
    (cert,) = _certificates(bench, github_signed)
    assert _san(cert) == [identity]
    ext = _extensions(cert)
    assert ext["issuer"] == ext["issuer_v1"] == sigstore.issuer_url("github")
    assert ext["github_workflow_repository"] == "acme/app"
    assert ext["github_workflow_ref"] == ext["source_repository_ref"] == "refs/tags/v1.2.3"
    assert ext["github_workflow_sha"] == ext["source_repository_digest"] == GITHUB_SHA
    assert ext["github_workflow_name"] == "release"
    assert ext["source_repository_uri"] == "https://github.com/acme/app"
    assert ext["build_signer_uri"] == ext["build_config_uri"] == identity
    assert ext["build_trigger"] == ext["github_workflow_trigger"] == "push"
    # The regexp form a release policy would use passes too.
    by_regexp = _cosign(
        bench,
        sigstore,
        "verify",
        "--certificate-identity-regexp",
        r"^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v",
        "--certificate-oidc-issuer",
        sigstore.issuer_url("github"),
        "--insecure-ignore-tlog",
        "--insecure-ignore-sct",
        "--output",
        "json",
        github_signed,
    )
    _passes(by_regexp, github_signed)


def test_github_workflow_wrong_repository_ref_or_sha_fails(
    bench: Bench, sigstore: SigstoreBench, github_signed: str
) -> None:
    identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"
    for flags in (
        _github_flags("acme/other", "refs/tags/v1.2.3"),  # another repository
        _github_flags("acme/app", "refs/tags/v1.2.4"),  # another ref
        _github_flags("acme/app", "refs/heads/main"),  # a branch, not the tag
        _github_flags("acme/app", "refs/tags/v1.2.3", sha="f" * 40),  # another commit
    ):
        _refused(_verify(bench, sigstore, github_signed, identity, "github", *flags))
    # Another repository's identity, or the right one from the email issuer: refused too.
    other = "https://github.com/acme/other/.github/workflows/release.yml@refs/tags/v1.2.3"
    _refused(_verify(bench, sigstore, github_signed, other, "github"))
    _refused(_verify(bench, sigstore, github_signed, identity, "email"))


def test_cosign_github_provider_fetches_its_token_from_the_actions_runtime(
    bench: Bench, sigstore: SigstoreBench
) -> None:
    """cosign's own `github-actions` provider, as in a real workflow: only the two runtime
    variables, no --identity-token, no SIGSTORE_ID_TOKEN."""
    ref = _tiny_image(bench, "sigstore/provider")
    url, request_token = sigstore.oidc.actions_token_request(
        repository="acme/provider-app", ref="refs/tags/v2.0.0", sha=GITHUB_SHA
    )
    before = len(sigstore.oidc.token_requests)
    result = _cosign(
        bench,
        sigstore,
        "sign",
        *sigstore.sign_flags(),
        ref,
        ACTIONS_ID_TOKEN_REQUEST_URL=url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=request_token,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    requests_made = sigstore.oidc.token_requests[before:]
    assert [(r.audience, r.authorized, r.answered) for r in requests_made] == [
        ("sigstore", True, True)
    ]
    identity = "https://github.com/acme/provider-app/.github/workflows/release.yml@refs/tags/v2.0.0"
    verified = _verify(
        bench,
        sigstore,
        ref,
        identity,
        "github",
        *_github_flags("acme/provider-app", "refs/tags/v2.0.0"),
    )
    _passes(verified, ref)


# -- GitLab CI identities -----------------------------------------------------------------------

GITLAB: dict[str, Any] = {
    "project_path": "acme/app",
    "ref": "v1.2.3",
    "ref_type": "tag",
    "sha": GITHUB_SHA,
}
GITLAB_IDENTITY = f"https://{GITLAB_HOST}/acme/app//.gitlab-ci.yml@refs/tags/v1.2.3"


@pytest.fixture(scope="module")
def gitlab_signed(bench: Bench, sigstore: SigstoreBench) -> str:
    ref = _tiny_image(bench, "sigstore/gitlab")
    _signed(bench, sigstore, ref, sigstore.token("gitlab", **GITLAB))
    return ref


def test_gitlab_pipeline_signature_verifies_with_its_extensions(
    bench: Bench, sigstore: SigstoreBench, gitlab_signed: str
) -> None:
    assert sigstore.identity("gitlab", **GITLAB) == GITLAB_IDENTITY
    _passes(_verify(bench, sigstore, gitlab_signed, GITLAB_IDENTITY, "gitlab"), gitlab_signed)
    (cert,) = _certificates(bench, gitlab_signed)
    assert _san(cert) == [GITLAB_IDENTITY]
    ext = _extensions(cert)
    assert ext["issuer"] == sigstore.issuer_url("gitlab")
    assert ext["source_repository_uri"] == f"https://{GITLAB_HOST}/acme/app"
    assert ext["source_repository_ref"] == "refs/tags/v1.2.3"
    assert ext["source_repository_digest"] == GITHUB_SHA
    assert ext["build_config_uri"] == ext["build_signer_uri"] == GITLAB_IDENTITY
    assert ext["build_trigger"] == "push"
    assert "github_workflow_repository" not in ext  # GitLab certificates carry no GitHub OIDs


def test_gitlab_pipeline_wrong_project_or_ref_fails(
    bench: Bench, sigstore: SigstoreBench, gitlab_signed: str
) -> None:
    for identity in (
        f"https://{GITLAB_HOST}/acme/other//.gitlab-ci.yml@refs/tags/v1.2.3",  # another project
        f"https://{GITLAB_HOST}/acme/app//.gitlab-ci.yml@refs/tags/v1.2.4",  # another ref
        f"https://{GITLAB_HOST}/acme/app//.gitlab-ci.yml@refs/heads/main",  # a branch
    ):
        _refused(_verify(bench, sigstore, gitlab_signed, identity, "gitlab"))
    _refused(_verify(bench, sigstore, gitlab_signed, GITLAB_IDENTITY, "github"))


# -- a key-based and a keyless signature on one digest --------------------------------------------


@pytest.mark.parametrize("first", ["key", "keyless"])
def test_key_and_keyless_signatures_coexist_on_one_digest(
    bench: Bench, sigstore: SigstoreBench, first: str
) -> None:
    """Both kinds land as layers of the same `.sig` manifest; each verify finds its own."""
    ref = _tiny_image(bench, f"sigstore/both-{first}")
    token = sigstore.token("email", email="carol@example.com")

    key_sign = ["sign", "--yes", "--key", str(bench.cosign_key), "--tlog-upload=false", ref]
    for kind in ("key", "keyless") if first == "key" else ("keyless", "key"):
        if kind == "key":
            result = _cosign(bench, sigstore, *key_sign)
            assert result.returncode == 0, result.stderr[-3000:]
        else:
            _signed(bench, sigstore, ref, token)
    layers = _signature_layers(bench, ref)
    assert len(layers) == 2
    assert sum(CERT_ANNOTATION in layer.get("annotations", {}) for layer in layers) == 1

    key_verify = ["verify", "--key", str(bench.cosign_pub), "--insecure-ignore-tlog"]
    by_key = _cosign(bench, sigstore, *key_verify, "--output", "json", ref)
    assert len(_passes(by_key, ref)) == 1  # only the key's signature verifies with the key
    keyless = _passes(_verify(bench, sigstore, ref, "carol@example.com", "email"), ref)
    assert [p["optional"]["Subject"] for p in keyless] == ["carol@example.com"]


# -- Fulcio's dedicated CI issuer types -----------------------------------------------------------


def test_fulcios_dedicated_ci_types_accept_loopback_issuers(
    sigstore: SigstoreBench, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`github-workflow` and `gitlab-pipeline` (no templates) work with an http issuer too."""
    folder = tmp_path_factory.mktemp("dedicated")
    blob = folder / "blob.txt"
    blob.write_text("dedicated\n")
    with SigstoreBench(folder, binary=sigstore.binary, ci_types="dedicated") as dedicated:
        cases: tuple[tuple[Kind, dict[str, Any]], ...] = (("github", GITHUB), ("gitlab", GITLAB))
        for kind, claims in cases:
            env = dedicated.cosign_env(os.environ, dedicated.token(kind, **claims))
            bundle = folder / f"{kind}.bundle"
            signed = _run_cosign(
                ["sign-blob", *dedicated.sign_flags(), "--bundle", str(bundle), str(blob)], env
            )
            assert signed.returncode == 0, signed.stderr[-2000:]
            identity = dedicated.identity(kind, **claims)
            verify = [
                "verify-blob",
                *dedicated.verify_flags(identity, kind),
                "--bundle",
                str(bundle),
            ]
            assert _run_cosign([*verify, str(blob)], env).returncode == 0
            if kind == "github":
                wrong = _github_flags("acme/other", "refs/tags/v1.2.3")
                refused = _run_cosign([*verify, *wrong, str(blob)], env)
                assert refused.returncode != 0, refused.stderr[-2000:]
            cert_pem = json.loads(bundle.read_text())["cert"]
            cert = x509.load_pem_x509_certificate(_b64_or_pem(cert_pem))
            repository_uri = _extensions(cert)["source_repository_uri"]
            base = "https://github.com" if kind == "github" else "https://gitlab.com"
            assert repository_uri == f"{base}/acme/app"  # hard-coded by these types


def _run_cosign(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["cosign", *args], env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )


def _b64_or_pem(text: str) -> bytes:
    import base64

    return text.encode() if text.startswith("-----") else base64.b64decode(text)


def test_the_fulcio_build_is_cached_and_keyed(sigstore: SigstoreBench) -> None:
    from tests.support.sigstore import build_fulcio, cached_fulcio, recipe_key

    binary = build_fulcio()  # the fixture built it: this returns at once
    assert binary == cached_fulcio()
    assert binary.parent.name == recipe_key()
    facts = json.loads((binary.parent / "build.json").read_text())
    assert facts["key"] == recipe_key()
    assert facts["size_bytes"] == binary.stat().st_size  # the whole file, renamed into place


def test_cosign_key_in_the_environment_turns_keyless_signing_into_key_signing(
    bench: Bench, sigstore: SigstoreBench
) -> None:
    """cosign reads each flag from COSIGN_<FLAG> as well: with COSIGN_KEY set (the product's
    own variable name), a keyless `cosign sign` signs with that key and asks Fulcio for nothing.
    Why `clean_env` drops COSIGN_* and what the product must do before keyless signing."""
    ref = _tiny_image(bench, "sigstore/stray-key")
    token = sigstore.token("email", email="dave@example.com")
    result = _cosign(
        bench, sigstore, "sign", *sigstore.sign_flags(), ref,
        SIGSTORE_ID_TOKEN=token, COSIGN_KEY=str(bench.cosign_key),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Retrieving signed certificate" not in result.stderr
    assert _certificates(bench, ref) == [] and len(_signature_layers(bench, ref)) == 1
    key_verify = ["verify", "--key", str(bench.cosign_pub), "--insecure-ignore-tlog"]
    _passes(_cosign(bench, sigstore, *key_verify, "--output", "json", ref), ref)
    _refused(_verify(bench, sigstore, ref, "dave@example.com", "email"))
