"""An OpenID Connect issuer of our own on loopback, for keyless signing tests.

A threaded HTTP server on 127.0.0.1 (a free port) with one issuer per token kind, each under its
own path, so Fulcio can give each its own issuer type:

    http://127.0.0.1:PORT/email    email-style tokens (`sub`, `email`, `email_verified`)
    http://127.0.0.1:PORT/github   tokens shaped like GitHub Actions' (`repository`, `ref`, ...)
    http://127.0.0.1:PORT/gitlab   tokens shaped like GitLab CI's `id_tokens` (`project_path`, ...)

Each serves `/.well-known/openid-configuration` and `/jwks`; all sign RS256 with one RSA key made
at start (never stored). `/github/actions-token` answers the GitHub Actions runtime's token
request (`GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with `Authorization: bearer
$ACTIONS_ID_TOKEN_REQUEST_TOKEN` -> `{"value": "<jwt>"}`), which is what cosign's own
`github-actions` provider calls; every such request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

Kind = Literal["email", "github", "gitlab"]
KINDS: tuple[Kind, ...] = ("email", "github", "gitlab")
AUDIENCE = "sigstore"  # what cosign asks for and Fulcio's ClientID
GITLAB_HOST = "gitlab.example"  # the host GitLab-shaped tokens name (never contacted)
DEFAULT_SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN_PATH = "/github/actions-token"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _times(now: float, lifetime: int, expired: bool) -> dict[str, int]:
    """iat/nbf/exp: valid for `lifetime` seconds from now, or one that expired 10 minutes ago
    (beyond any verifier's clock-skew allowance)."""
    issued = int(now) - (3600 if expired else 0)
    expires = int(now) - 600 if expired else int(now) + lifetime
    return {"iat": issued, "nbf": issued, "exp": expires}


def email_claims(*, email: str = "alice@example.com", verified: bool = True) -> dict[str, Any]:
    return {"sub": email, "email": email, "email_verified": verified}


def github_claims(
    *,
    repository: str = "acme/app",
    ref: str = "refs/tags/v1.2.3",
    workflow: str = "release",
    workflow_file: str = ".github/workflows/release.yml",
    sha: str = DEFAULT_SHA,
    event_name: str = "push",
    run_id: str = "4242",
    run_attempt: str = "1",
    runner_environment: str = "github-hosted",
) -> dict[str, Any]:
    """The claims of a GitHub Actions ID token (its documented set; string values, as GitHub's)."""
    owner = repository.split("/", 1)[0]
    workflow_ref = f"{repository}/{workflow_file}@{ref}"
    ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
    return {
        "sub": f"repo:{repository}:ref:{ref}",
        "repository": repository,
        "repository_owner": owner,
        "repository_id": str(int.from_bytes(hashlib.sha256(repository.encode()).digest()[:3])),
        "repository_owner_id": str(int.from_bytes(hashlib.sha256(owner.encode()).digest()[:3])),
        "repository_visibility": "private",
        "actor": "release-bot",
        "ref": ref,
        "ref_type": ref_type,
        "sha": sha,
        "workflow": workflow,
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "event_name": event_name,
        "run_id": run_id,
        "run_number": "7",
        "run_attempt": run_attempt,
        "runner_environment": runner_environment,
    }


def gitlab_claims(
    *,
    project_path: str = "acme/app",
    ref: str = "v1.2.3",
    ref_type: str = "tag",
    sha: str = DEFAULT_SHA,
    ci_config_path: str = ".gitlab-ci.yml",
    pipeline_source: str = "push",
    pipeline_id: str = "1001",
    job_id: str = "2002",
    ref_protected: bool = True,
    runner_environment: str = "gitlab-hosted",
    host: str = GITLAB_HOST,
) -> dict[str, Any]:
    """The claims of a GitLab CI `id_tokens` token (string values, as GitLab's)."""
    namespace = project_path.rsplit("/", 1)[0]
    full_ref = f"refs/{'tags' if ref_type == 'tag' else 'heads'}/{ref}"
    return {
        "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
        "project_path": project_path,
        "project_id": str(int.from_bytes(hashlib.sha256(project_path.encode()).digest()[:3])),
        "namespace_path": namespace,
        "namespace_id": str(int.from_bytes(hashlib.sha256(namespace.encode()).digest()[:3])),
        "project_visibility": "private",
        "user_login": "release-bot",
        "ref": ref,
        "ref_type": ref_type,
        "ref_protected": "true" if ref_protected else "false",
        "sha": sha,
        "pipeline_source": pipeline_source,
        "pipeline_id": pipeline_id,
        "job_id": job_id,
        "ci_config_ref_uri": f"{host}/{project_path}//{ci_config_path}@{full_ref}",
        "ci_config_sha": sha,
        "runner_id": 17,
        "runner_environment": runner_environment,
    }


CLAIM_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "email": email_claims,
    "github": github_claims,
    "gitlab": gitlab_claims,
}


@dataclass(frozen=True)
class TokenRequest:
    """One request to the Actions token endpoint, as the server saw it."""

    audience: str | None
    authorized: bool
    answered: bool


class OIDCIssuer:
    """Start with `start()` or `with OIDCIssuer() as issuer:`; `issuer_url(kind)`,
    `token(kind, ...)`, `actions_token_request(...)`."""

    def __init__(self, *, lifetime: int = 600) -> None:
        self.lifetime = lifetime
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._jwk = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": _b64url_int(numbers.n),
            "e": _b64url_int(numbers.e),
        }
        self.kid = hashlib.sha256(json.dumps(self._jwk, sort_keys=True).encode()).hexdigest()[:16]
        self._jwk["kid"] = self.kid
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._exchanges: dict[str, dict[str, Any]] = {}
        self.token_requests: list[TokenRequest] = []

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oidc-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "OIDCIssuer not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def issuer_url(self, kind: Kind) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown token kind {kind!r} (one of {', '.join(KINDS)})")
        return f"{self.base_url}/{kind}"

    # -- tokens -----------------------------------------------------------------------------
    def claims(
        self,
        kind: Kind,
        *,
        expired: bool = False,
        audience: str = AUDIENCE,
        extra: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The claim set a token of `kind` carries: the kind's builder's keyword arguments
        (`repository=`, `ref=`, `email=` ...), then `extra` claims added or overriding."""
        if kind not in KINDS:
            raise ValueError(f"unknown token kind {kind!r} (one of {', '.join(KINDS)})")
        body: dict[str, Any] = {
            "iss": self.issuer_url(kind),
            "aud": audience,
            "jti": secrets.token_hex(8),
            **_times(time.time(), self.lifetime, expired),
            **CLAIM_BUILDERS[kind](**fields),
        }
        body.update(extra or {})
        return body

    def sign(self, claims: Mapping[str, Any]) -> str:
        """An RS256 JWS of `claims` with this issuer's key."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            f"{_b64url(json.dumps(header, separators=(',', ':')).encode())}."
            f"{_b64url(json.dumps(dict(claims), separators=(',', ':')).encode())}"
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def token(self, kind: Kind, **kwargs: Any) -> str:
        """A signed ID token of `kind` (see `claims` for the arguments)."""
        return self.sign(self.claims(kind, **kwargs))

    def actions_token_request(self, **github_fields: Any) -> tuple[str, str]:
        """(ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN) for a GitHub-shaped
        token with these claims (`github_claims` arguments, `expired=`, `extra=`). The URL
        already has a query, as the runtime's does, so clients append `&audience=...`."""
        request_token = secrets.token_urlsafe(24)
        with self._lock:
            self._exchanges[request_token] = github_fields
        return f"{self.base_url}{TOKEN_PATH}?api-version=2.0", request_token

    # -- HTTP -------------------------------------------------------------------------------
    def _discovery(self, kind: Kind) -> dict[str, Any]:
        issuer = self.issuer_url(kind)
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks",
            "authorization_endpoint": f"{issuer}/authorize",  # not served: no interactive flow
            "token_endpoint": f"{issuer}/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "email", "email_verified"],
        }

    def _exchange(self, query: str, authorization: str) -> tuple[int, dict[str, Any]]:
        audiences = parse_qs(query).get("audience") or []
        audience = audiences[0] if audiences else None
        scheme, _, presented = authorization.partition(" ")
        with self._lock:
            fields = self._exchanges.get(presented) if scheme.lower() == "bearer" else None
        if fields is None:
            self.token_requests.append(TokenRequest(audience, authorized=False, answered=False))
            return HTTPStatus.UNAUTHORIZED, {"message": "bad or missing bearer token"}
        if not audience:
            self.token_requests.append(TokenRequest(audience, authorized=True, answered=False))
            return HTTPStatus.BAD_REQUEST, {"message": "audience missing"}
        token = self.token("github", audience=audience, **fields)
        self.token_requests.append(TokenRequest(audience, authorized=True, answered=True))
        return HTTPStatus.OK, {"count": 1, "value": token}

    def _route(self, path: str, query: str, authorization: str) -> tuple[int, Any]:
        if path == TOKEN_PATH:
            return self._exchange(query, authorization)
        for kind in KINDS:
            if path == f"/{kind}/.well-known/openid-configuration":
                return HTTPStatus.OK, self._discovery(kind)
            if path == f"/{kind}/jwks":
                return HTTPStatus.OK, {"keys": [self._jwk]}
        return HTTPStatus.NOT_FOUND, {"message": f"no such path {path}"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OIDCIssuer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        authorization = self.headers.get("Authorization", "")
        status, body = self.server.owner._route(parts.path, parts.query, authorization)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read token_requests
        pass
