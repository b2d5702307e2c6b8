"""cosign: sign an index digest, attach attestations, verify both. Digest references only: the
argv builders take a `DigestRef`, so signing a tag is impossible by construction.

Offline and on private registries the transparency log is optional (`SignPolicy.transparency_log`):
with it off, signing passes `--tlog-upload=false` and verification `--insecure-ignore-tlog=true`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.adapters.runner import Runner
from pipeline.errors import VerifyFailed
from pipeline.refs import DigestRef
from pipeline.spec import KeylessIdentity

# cosign's predicate type names for `attest --type` / `verify-attestation --type`.
PREDICATE_TYPES = {"cyclonedx": "cyclonedx", "vuln": "vuln", "provenance": "slsaprovenance1"}


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who signs or who must have signed: a key reference, or a keyless identity."""

    key: str | None = None  # private key ref for signing (path, env://, kms://…)
    public_key: str | None = None  # for verifying
    keyless: KeylessIdentity | None = None
    tlog: bool = False
    fulcio_url: str | None = None  # keyless: a private Fulcio (None: the public-good one)
    sct: bool = True  # keyless: the certificate carries (and must carry) a CT log's SCT


SERVERS = {"github": "https://github.com", "gitlab": "https://gitlab.com"}


def workflow_identity(who: KeylessIdentity) -> str:
    """The URL a CI workload's certificate names, without its `@ref`."""
    server = (who.server or SERVERS[who.ci or "github"]).rstrip("/")
    joiner = "//" if who.ci == "gitlab" else "/"
    return f"{server}/{who.repository}{joiner}{who.workflow}"


def _tlog_sign(identity: Identity) -> list[str]:
    return [] if identity.tlog else ["--tlog-upload=false"]


def _tlog_verify(identity: Identity) -> list[str]:
    args = [] if identity.tlog else ["--insecure-ignore-tlog=true"]
    if identity.keyless is not None and not identity.sct:
        args.append("--insecure-ignore-sct")
    return args


def _signer(identity: Identity) -> list[str]:
    if identity.key:
        return ["--key", identity.key]
    args = ["--fulcio-url", identity.fulcio_url] if identity.fulcio_url else []
    if identity.keyless is not None and not identity.sct:
        args.append("--insecure-skip-verify")  # the certificate has no SCT to check
    return args


def _verifier(identity: Identity, expected_ref: str | None = None) -> list[str]:
    """Who must have signed. A CI identity is checked exactly against `expected_ref` (the tag of
    the version being verified) when it is known, else against the spec's `ref_regexp`."""
    if identity.keyless is not None:
        who = identity.keyless
        args = ["--certificate-oidc-issuer", who.issuer]
        if who.ci is not None:
            base = workflow_identity(who)
            if expected_ref:
                args += ["--certificate-identity", f"{base}@{expected_ref}"]
            else:
                args += ["--certificate-identity-regexp", f"^{re.escape(base)}@{who.ref_regexp}$"]
            if who.ci == "github":
                args += ["--certificate-github-workflow-repository", str(who.repository)]
                if expected_ref:
                    args += ["--certificate-github-workflow-ref", expected_ref]
            return args
        if who.subject:
            args += ["--certificate-identity", who.subject]
        if who.subject_regexp:
            args += ["--certificate-identity-regexp", who.subject_regexp]
        return args
    if not identity.public_key:
        raise VerifyFailed("no public key to verify with (set COSIGN_PUBLIC_KEY or a key)")
    return ["--key", identity.public_key]


def sign_argv(ref: DigestRef, identity: Identity, annotations: Mapping[str, str]) -> list[str]:
    argv = ["cosign", "sign", "--yes", *_signer(identity), *_tlog_sign(identity)]
    for key in sorted(annotations):
        argv += ["--annotations", f"{key}={annotations[key]}"]
    return [*argv, str(ref)]


def attest_argv(
    ref: DigestRef, identity: Identity, kind: str, predicate: Path, *, upload: bool = True
) -> list[str]:
    """`upload=False`: the signed envelope is printed, not written to the registry."""
    return [
        "cosign",
        "attest",
        "--yes",
        *_signer(identity),
        *_tlog_sign(identity),
        *([] if upload else ["--no-upload=true"]),
        "--type",
        PREDICATE_TYPES[kind],
        "--predicate",
        str(predicate),
        str(ref),
    ]


def attach_attestations_argv(ref: DigestRef, envelopes: Sequence[Path]) -> list[str]:
    argv = ["cosign", "attach", "attestation"]
    for envelope in envelopes:
        argv += ["--attestation", str(envelope)]
    return [*argv, str(ref)]


def verify_argv(ref: DigestRef, identity: Identity, expected_ref: str | None = None) -> list[str]:
    return [
        "cosign",
        "verify",
        *_verifier(identity, expected_ref),
        *_tlog_verify(identity),
        "--output",
        "json",
        str(ref),
    ]


def verify_attestation_argv(
    ref: DigestRef, identity: Identity, kind: str, expected_ref: str | None = None
) -> list[str]:
    return [
        "cosign",
        "verify-attestation",
        *_verifier(identity, expected_ref),
        *_tlog_verify(identity),
        "--type",
        PREDICATE_TYPES[kind],
        "--output",
        "json",
        str(ref),
    ]


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """Where cosign stores a signature (`sig`) or attestations (`att`) for a digest."""
    return digest.replace(":", "-") + f".{suffix}"


def parse_verify_output(stdout: str, expected_digest: str) -> list[dict[str, Any]]:
    """cosign verify prints a JSON array of simple-signing payloads; check each names our digest."""
    text = stdout.strip()
    try:
        payloads = (
            json.loads(text)
            if text.startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise VerifyFailed("cosign verify printed no readable payload") from exc
    flat: list[dict[str, Any]] = []
    for item in payloads:
        flat.extend(item if isinstance(item, list) else [item])
    for payload in flat:
        digest = payload.get("critical", {}).get("image", {}).get("docker-manifest-digest")
        if digest != expected_digest:
            raise VerifyFailed(
                f"a signature names {digest}, not the verified digest {expected_digest}"
            )
    if not flat:
        raise VerifyFailed("cosign verify found no signature payload")
    return flat


def parse_attestations(stdout: str) -> list[dict[str, Any]]:
    """verify-attestation prints one DSSE envelope per line; return the in-toto statements."""

    statements: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        envelope = json.loads(line)
        statements.append(json.loads(base64.b64decode(envelope["payload"])))
    return statements


class Cosign:
    def __init__(self, runner: Runner) -> None:
        # cosign reads every flag from COSIGN_<FLAG> as well: a COSIGN_KEY in the environment
        # would silently turn a keyless signature into a key signature (and break a keyless
        # verify). Only COSIGN_PASSWORD, which cosign reads for the key's password, is passed.
        self.runner = runner.without("COSIGN_", keep=("COSIGN_PASSWORD",))

    def sign(self, ref: DigestRef, identity: Identity, annotations: Mapping[str, str]) -> None:
        self.runner.run(
            sign_argv(ref, identity, annotations), error_message=f"cosign could not sign {ref}"
        )

    def attest(self, ref: DigestRef, identity: Identity, kind: str, predicate: Path) -> None:
        self.runner.run(
            attest_argv(ref, identity, kind, predicate),
            error_message=f"cosign could not attach the {kind} attestation to {ref}",
        )

    def attestation_envelope(
        self, ref: DigestRef, identity: Identity, kind: str, predicate: Path, out: Path
    ) -> Path:
        """A signed DSSE envelope of one attestation, written to `out` (nothing uploaded)."""
        result = self.runner.run(
            attest_argv(ref, identity, kind, predicate, upload=False),
            error_message=f"cosign could not sign the {kind} attestation of {ref}",
        )
        envelope = result.stdout.strip()
        if not envelope.startswith("{"):
            raise VerifyFailed(f"cosign printed no attestation envelope for {kind} of {ref}")
        out.write_text(envelope + "\n")
        return out

    def attach_attestations(self, ref: DigestRef, envelopes: Sequence[Path]) -> None:
        """Attach signed envelopes to a digest in one write of its `.att` tag."""
        self.runner.run(
            attach_attestations_argv(ref, envelopes),
            error_message=f"cosign could not attach {len(envelopes)} attestation(s) to {ref}",
        )

    def verify(
        self, ref: DigestRef, identity: Identity, expected_ref: str | None = None
    ) -> list[dict[str, Any]]:
        result = self.runner.run(verify_argv(ref, identity, expected_ref), check=False)
        if result.exit_code != 0:
            raise VerifyFailed(f"signature check failed for {ref}: {_reason(result.stderr)}")
        return parse_verify_output(result.stdout, str(ref.digest))

    def verify_attestation(
        self, ref: DigestRef, identity: Identity, kind: str, expected_ref: str | None = None
    ) -> list[dict[str, Any]]:
        argv = verify_attestation_argv(ref, identity, kind, expected_ref)
        result = self.runner.run(argv, check=False)
        if result.exit_code != 0:
            raise VerifyFailed(f"no valid {kind} attestation on {ref}: {_reason(result.stderr)}")
        return parse_attestations(result.stdout)

    def public_key(self, key: str, out: Path, env: Mapping[str, str] | None = None) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.runner.run(["cosign", "public-key", "--key", key, "--outfile", str(out)], env=env)
        return out

    def generate_key_pair(self, folder: Path, password: str) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        self.runner.run(
            ["cosign", "generate-key-pair"], cwd=folder, env={"COSIGN_PASSWORD": password}
        )
        (folder / "cosign.key").chmod(0o600)
        return folder / "cosign.key", folder / "cosign.pub"

    def copy(self, source: DigestRef, destination: str) -> None:
        """Copy an image with its signatures and attestations to another registry (again, whole,
        when its own parallel writes raced: COPY_RACE; `--force` makes a repeat harmless)."""
        self.runner.run(
            ["cosign", "copy", "--force", str(source), destination],
            error_message=f"cosign could not copy {source} to {destination}",
            retry_also=COPY_RACE,
        )

    def version(self) -> str:
        out = self.runner.run(["cosign", "version", "--json"], quiet=True).stdout
        return str(json.loads(out).get("gitVersion", "?"))


# cosign copy writes an image's manifests and its .sig/.att/referrer tags in parallel: a
# registry that checks an index's children (distribution does) can refuse an index or a
# referrers list whose child is not written yet. Seen once under load, on a mirror:
# "PUT …/manifests/sha256-<hex>: … MANIFEST_BLOB_UNKNOWN: blob unknown to registry; sha256:…".
COPY_RACE = re.compile(r"MANIFEST_BLOB_UNKNOWN|blob unknown to registry")


def _reason(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("Error:"):
            return line.removeprefix("Error:").strip()[:300]
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
