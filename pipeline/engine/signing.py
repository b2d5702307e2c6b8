"""Who signs a run, resolved and checked before anything is built.

- A key given as PEM text (how CI secret stores hold it) reaches cosign as `env://VARIABLE`: the
  private key is never written to disk. A path, `env://`, `k8s://`, `pkcs11:` or KMS reference
  is passed as it is; a path that does not exist is one line naming the variable and the path.
- The key is decrypted at once (`cosign public-key`), so a wrong COSIGN_PASSWORD is one line
  naming COSIGN_PASSWORD before any build, and a COSIGN_PUBLIC_KEY that is not the key's public
  half is refused too.
- With no key outside CI, the sandbox's throw-away key pair signs (said loudly by `sign`).
- Keyless: the spec's OIDC identity; nothing to decrypt.

Only PEM text and passwords are secrets: a key's path or KMS reference is never masked, so an
error can say which file is missing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.adapters.cosign import Cosign, Identity
from pipeline.adapters.runner import Runner
from pipeline.context import in_ci
from pipeline.errors import CommandError, SpecError, last_line
from pipeline.sandbox import local as sandbox
from pipeline.secrets import register
from pipeline.spec import Spec

PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105  (a variable's name)
# PEM text reaches cosign under these names (`env://NAME`), never under COSIGN_*: cosign reads
# every flag from COSIGN_<FLAG> too, so the cosign adapter removes those from its environment.
KEY_VARIABLE = "PIPELINE_COSIGN_KEY"
PUBLIC_KEY_VARIABLE = "PIPELINE_COSIGN_PUBLIC_KEY"
# Key references cosign resolves itself (anything else without PEM text is a file path).
REFERENCE_SCHEMES = (
    "env://",
    "k8s://",
    "pkcs11:",
    "awskms://",
    "gcpkms://",
    "azurekms://",
    "hashivault://",
    "https://",
)


@dataclass(frozen=True)
class Signing:
    """Who signs this run: the identity cosign signs and verifies with, the environment cosign
    needs for it (COSIGN_PASSWORD), and whether the key is the sandbox's throw-away one."""

    identity: Identity
    cosign_env: dict[str, str] = field(default_factory=dict)
    throwaway: bool = False
    public_key_pem: str | None = None  # the public key's text, when known (written to dist/)


def is_pem(value: str) -> bool:
    return value.lstrip().startswith("-----BEGIN")


def key_reference(value: str, variable: str, pem_variable: str) -> str:
    """What cosign's `--key` gets for `variable`'s value: PEM text stays in the environment
    (`env://<pem_variable>`); a reference or a path is used as given, a missing path refused."""
    if is_pem(value):
        return f"env://{pem_variable}"
    if value and not value.startswith(REFERENCE_SCHEMES) and not Path(value).is_file():
        raise SpecError(f"{variable}: file {value} does not exist (a key path, PEM text or URI)")
    return value


def _pem(text: str) -> str:
    return "".join(text.split())


def resolve(
    spec: Spec, env: Mapping[str, str], runner: Runner, scratch: Path, *, signs: bool
) -> Signing:
    """The run's signing identity. `signs`: the run signs (the key must decrypt and match the
    public key); otherwise it only verifies, and a public key alone is enough."""
    policy = spec.sign
    key_value = env.get(policy.key_env, "")
    if is_pem(key_value):
        register(key_value)
    if policy.keyless is not None:
        return _keyless(spec, env, signs=signs)
    key = key_reference(key_value, policy.key_env, KEY_VARIABLE)
    public_value = env.get(policy.public_key_env, "")
    public = key_reference(public_value, policy.public_key_env, PUBLIC_KEY_VARIABLE)
    password = env.get(PASSWORD_ENV, "")
    register(password)
    pem_env = {
        name: value
        for name, value in ((KEY_VARIABLE, key_value), (PUBLIC_KEY_VARIABLE, public_value))
        if is_pem(value)
    }
    if key and (signs or not public):
        cosign_env = {PASSWORD_ENV: password, **pem_env}
        derived = _decrypt(Cosign(runner), key, cosign_env, scratch, policy.key_env)
        given = public_value if is_pem(public_value) else _read(public)
        if signs and given is not None and _pem(given) != _pem(derived):
            raise SpecError(
                f"{policy.public_key_env}: not the public half of the key in {policy.key_env} "
                "(verification would fail after signing); set the matching public key or unset it"
            )
        identity = Identity(
            key=key,
            public_key=public or str(scratch / "cosign.pub"),
            tlog=policy.transparency_log,
        )
        return Signing(identity, cosign_env, public_key_pem=derived)
    if not key and policy.throwaway_key_when_unset and not in_ci(env):
        pair = sandbox.throwaway_key(runner)
        identity = Identity(
            key=str(pair.key), public_key=str(pair.public_key), tlog=policy.transparency_log
        )
        return Signing(
            identity,
            {PASSWORD_ENV: pair.password},
            throwaway=True,
            public_key_pem=pair.public_key.read_text(),
        )
    # No key: stages that sign fail with a clear line; build, scan and verify do not need one.
    return Signing(
        Identity(public_key=public or None, tlog=policy.transparency_log),
        pem_env,
        public_key_pem=public_value if is_pem(public_value) else _read(public),
    )


TOKEN_ENV = "SIGSTORE_ID_TOKEN"  # noqa: S105  (a variable's name: GitLab's id_tokens, cosign's)
GITHUB_TOKEN_REQUEST = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
FULCIO_ENV = "PIPELINE_FULCIO_URL"


def _keyless(spec: Spec, env: Mapping[str, str], *, signs: bool) -> Signing:
    """A keyless identity: cosign gets the OIDC token from SIGSTORE_ID_TOKEN (GitLab's id_tokens)
    or from GitHub's token request (id-token: write); one must be there before anything runs."""
    policy = spec.sign
    register(env.get(TOKEN_ENV))
    register(env.get(GITHUB_TOKEN_REQUEST[1]))
    has_token = bool(env.get(TOKEN_ENV)) or all(env.get(name) for name in GITHUB_TOKEN_REQUEST)
    if signs and not has_token:
        raise SpecError(
            f"sign.keyless: no OIDC token for keyless signing; set {TOKEN_ENV} (GitLab: "
            "id_tokens with aud sigstore) or grant the GitHub job `id-token: write`"
        )
    expires = token_expiry(env.get(TOKEN_ENV, ""))
    if signs and expires is not None and expires <= time.time():
        when = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise SpecError(
            f"{TOKEN_ENV}: the OIDC token expired at {when}; Fulcio refuses it (give the job a "
            "fresh token)"
        )
    identity = Identity(
        keyless=policy.keyless,
        tlog=policy.transparency_log,
        fulcio_url=env.get(FULCIO_ENV) or policy.fulcio_url,
        sct=policy.certificate_transparency,
    )
    return Signing(identity)


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without checking its signature (Fulcio checks that): only
    to refuse an expired token before anything is built."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def _read(reference: str) -> str | None:
    if reference and not reference.startswith(REFERENCE_SCHEMES) and Path(reference).is_file():
        return Path(reference).read_text()
    return None


def _decrypt(
    cosign: Cosign, key: str, cosign_env: dict[str, str], scratch: Path, variable: str
) -> str:
    """The key's public half; decrypting it proves the password before anything runs."""
    out = scratch / "cosign.pub"
    try:
        cosign.public_key(key, out, env=cosign_env)
    except CommandError as exc:
        reason = last_line(exc.stderr).removeprefix("error during command execution: ")
        reason = reason or exc.message
        if "decrypt" in reason:
            raise SpecError(
                f"{PASSWORD_ENV}: does not decrypt the signing key in {variable} ({reason}); "
                f"set {PASSWORD_ENV} to that key's password"
            ) from None
        raise SpecError(f"{variable}: cosign cannot read the signing key: {reason}") from None
    return out.read_text()
