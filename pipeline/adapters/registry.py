"""The OCI distribution HTTP API: the one place that speaks to a registry directly.

Used to resolve tags to digests, point tags at digests (promotion re-PUTs the exact manifest bytes,
so nothing is rebuilt and the digest cannot change), list tags and push small artifacts. Every
request retries transient faults (429 with Retry-After, 5xx, resets, unexpected EOF) with capped
exponential backoff; 401/403 fail fast with AuthError, other 4xx with RegistryError.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import requests
import requests.exceptions

from pipeline.errors import AuthError, RegistryError
from pipeline.oci import INDEX_TYPES, digest_of
from pipeline.refs import is_loopback
from pipeline.retry import Attempt, Retrier, parse_retry_after, status_is_transient
from pipeline.secrets import register
from pipeline.spec import RetryPolicy

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (*INDEX_TYPES, OCI_MANIFEST, DOCKER_MANIFEST)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __post_init__(self) -> None:
        register(self.password)
        register(self.basic)  # the form an HTTP header or a docker config.json holds

    @property
    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:  # never show the password, even in a debugger or a log
        return f"Credentials(username={self.username!r}, password='***')"


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _manifest(host: str, what: str, response: requests.Response) -> Manifest:
    """A manifest answer, checked: a JSON object, of a manifest media type. Anything else (an
    HTML error page, a truncated body) is one RegistryError line, never a parsing traceback."""
    body = response.content
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        document = json.loads(body)
    except ValueError:
        raise RegistryError(
            f"registry {host} answered {what} with {len(body)} bytes of {media_type or 'data'} "
            "that are not a JSON manifest (truncated or not a registry)"
        ) from None
    if not isinstance(document, dict):
        raise RegistryError(f"registry {host} answered {what} with JSON that is not a manifest")
    if not media_type or media_type == "application/json":
        media_type = str(document.get("mediaType", OCI_MANIFEST))
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(
            f"registry {host} answered {what} as {media_type!r}, not a manifest media type"
        )
    return Manifest(digest=digest_of(body), media_type=media_type, body=body)


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def docker_config_credentials(
    host: str, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """Credentials for `host` from the docker config (`docker login`), if stored inline."""
    env = os.environ if environ is None else environ
    folder = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, json.JSONDecodeError):
        return None
    for key in (host, f"https://{host}", f"http://{host}"):
        entry = auths.get(key)
        if entry and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(user, password)
    return None


class RegistryClient:
    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        ca_file: Path | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[Attempt], None] | None = None,
        plain_http: bool | None = None,
        timeout: float = 60.0,
        credentials_hint: str = "",
    ) -> None:
        self.host = host
        self.credentials = credentials
        # Where the credentials come from, for a refusal's one line (the spec's variable names).
        self.credentials_hint = credentials_hint or f"`docker login {host}`"
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.timeout = timeout
        self.session = requests.Session()
        # Passed on every call: requests lets REQUESTS_CA_BUNDLE override session.verify.
        self.verify: str | bool = str(ca_file) if ca_file else True
        self._plain_http = plain_http
        self._bearer: dict[str, str] = {}
        self._basic = False
        self.retries = 0

    def close(self) -> None:
        """Close pooled connections (a client used for one operation can be closed at once)."""
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._plain_http is None:
            self._plain_http = self._detect_plain_http()
        return f"{'http' if self._plain_http else 'https'}://{self.host}"

    def _detect_plain_http(self) -> bool:
        """Loopback registries may speak plain HTTP (as docker and Trivy also allow)."""
        if not is_loopback(self.host):
            return False
        try:
            self.session.get(f"https://{self.host}/v2/", timeout=5, verify=self.verify)
        except requests.exceptions.SSLError:
            return True
        except requests.exceptions.ConnectionError:
            return False
        return False

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | BinaryIO | None = None,
        scope: str = "",
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        retry: bool = True,
    ) -> requests.Response:
        """One API call with auth and retries. Statuses in `allow` are returned, not raised.

        With `retry=False` a transient fault is raised as `_Transient` for the caller to retry a
        larger unit of work (a blob upload is retried whole, not its last request)."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"

        def once() -> requests.Response:
            try:
                response = self._send(method, url, headers, data, scope)
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.Timeout,
            ) as exc:
                raise _Transient(f"{method} {path}: {_short(exc)}") from exc
            if status_is_transient(response.status_code):
                raise _Transient(
                    f"{method} {path}: HTTP {response.status_code}",
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            return response

        if not retry:
            response = once()
            return self._checked(response, method, path, ok, allow)
        retrier = Retrier(self.retry, on_retry=self._note_retry)
        try:
            response = retrier.call(once, _classify)
        except _Transient as exc:
            raise RegistryError(
                f"registry {self.host}: {exc.reason} (gave up after {self.retry.attempts} attempts)"
            ) from None
        return self._checked(response, method, path, ok, allow)

    def _checked(
        self,
        response: requests.Response,
        method: str,
        path: str,
        ok: tuple[int, ...],
        allow: tuple[int, ...],
    ) -> requests.Response:
        if response.status_code in ok or response.status_code in allow:
            return response
        if response.status_code in (401, 403):
            who = f"as {self.credentials.username}" if self.credentials else "without credentials"
            raise AuthError(
                f"registry {self.host} refused {method} {path} {who} "
                f"(HTTP {response.status_code}); check the credentials ({self.credentials_hint})"
            )
        raise RegistryError(
            f"registry {self.host}: {method} {path} answered HTTP {response.status_code}: "
            f"{_error_text(response)}"
        )

    def _note_retry(self, attempt: Attempt) -> None:
        self.retries += 1
        if self.on_retry is not None:
            self.on_retry(attempt)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | BinaryIO | None,
        scope: str,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        auth = self._auth_header(scope)
        if auth:
            hdrs["Authorization"] = auth
        response = self.session.request(
            method, url, headers=hdrs, data=data, timeout=self.timeout, verify=self.verify
        )
        if response.status_code == 401 and self._answer_challenge(response, scope):
            hdrs["Authorization"] = self._auth_header(scope) or ""
            if not isinstance(data, bytes) and data is not None:
                data.seek(0)  # a streamed blob is sent again from its start
            response = self.session.request(
                method, url, headers=hdrs, data=data, timeout=self.timeout, verify=self.verify
            )
        return response

    def _auth_header(self, scope: str) -> str | None:
        if scope in self._bearer:
            return f"Bearer {self._bearer[scope]}"
        if self._basic and self.credentials:
            return f"Basic {self.credentials.basic}"
        return None

    def _answer_challenge(self, response: requests.Response, scope: str) -> bool:
        challenge = response.headers.get("WWW-Authenticate", "")
        kind, _, params_text = challenge.partition(" ")
        if kind.lower() == "basic":
            if self.credentials is None or self._basic:
                return False
            self._basic = True
            return True
        if kind.lower() == "bearer":
            params = _parse_challenge(params_text)
            realm = params.get("realm", "")
            if not realm.startswith(("https://", "http://")):
                raise RegistryError(
                    f"registry {self.host} answered a Bearer challenge without a usable realm "
                    f"({challenge[:120]!r}): not a registry speaking the distribution API"
                )
            query = {"service": params.get("service", "")}
            if scope or params.get("scope"):
                query["scope"] = scope or params["scope"]
            auth = (
                (self.credentials.username, self.credentials.password) if self.credentials else None
            )
            token_response = self.session.get(
                realm, params=query, auth=auth, timeout=self.timeout, verify=self.verify
            )
            if token_response.status_code != 200:
                return False
            try:
                body = token_response.json()
            except ValueError:
                raise RegistryError(
                    f"registry {self.host}: its token endpoint {realm} answered "
                    f"{token_response.headers.get('Content-Type') or 'no content type'}, not JSON"
                ) from None
            token = (
                body.get("token") or body.get("access_token") if isinstance(body, dict) else None
            )
            if not isinstance(token, str) or not token:
                return False
            register(token)
            self._bearer[scope] = token
            return True
        return False

    # -- API ---------------------------------------------------------------------------------

    def check_login(self) -> None:
        """GET /v2/ with the credentials: AuthError when the registry refuses them."""
        self.request("GET", "/v2/")

    def resolve(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, or None when it does not exist."""
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            scope=f"repository:{repository}:pull",
            allow=(404,),
        )
        if response.status_code == 404:
            return None
        return _manifest(self.host, f"{repository}:{reference}", response)

    def digest_of(self, repository: str, reference: str) -> str | None:
        manifest = self.resolve(repository, reference)
        return manifest.digest if manifest else None

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store `manifest` under `reference` (a tag): the exact bytes, so the digest is kept."""
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": manifest.media_type},
            data=manifest.body,
            scope=f"repository:{repository}:pull,push",
            ok=(201, 200),
        )
        stored = response.headers.get("Docker-Content-Digest", manifest.digest)
        if stored != manifest.digest:
            raise RegistryError(
                f"registry {self.host} stored {repository}:{reference} as {stored}, "
                f"expected {manifest.digest}"
            )
        return stored

    def tags(self, repository: str) -> list[str]:
        response = self.request(
            "GET",
            f"/v2/{repository}/tags/list",
            scope=f"repository:{repository}:pull",
            allow=(404,),
        )
        if response.status_code == 404:
            return []
        return sorted(response.json().get("tags") or [])

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            allow=(404,),
        )
        return response.status_code == 200

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull"
        )
        return response.content

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload a blob held in memory (skipped when present); see `_push`."""
        return self._push(repository, digest_of(data), lambda: contextlib.nullcontext(data))

    def push_blob_file(self, repository: str, path: Path, digest: str) -> str:
        """Upload the blob in `path` (an OCI layout's `blobs/sha256/<hex>`), streamed from disk:
        a base layer of tens of MiB is never held in memory (four images at once would hold
        four). The registry checks `digest` against what it receives."""
        return self._push(repository, digest, lambda: path.open("rb"))

    def _push(
        self,
        repository: str,
        digest: str,
        body: Callable[[], contextlib.AbstractContextManager[bytes | BinaryIO]],
    ) -> str:
        """A failed upload is retried whole, from a fresh `body()`: a lost answer may mean it
        completed, and a finished upload session cannot be resumed."""
        scope = f"repository:{repository}:pull,push"

        def upload() -> str:
            if self.blob_exists(repository, digest):
                return digest
            start = self.request(
                "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(202,), retry=False
            )
            location = start.headers["Location"]
            if location.startswith("/"):
                location = f"{self.base_url}{location}"
            joiner = "&" if "?" in location else "?"
            with body() as data:
                self.request(
                    "PUT",
                    f"{location}{joiner}digest={digest}",
                    headers={"Content-Type": "application/octet-stream"},
                    data=data,
                    scope=scope,
                    ok=(201,),
                    retry=False,
                )
            return digest

        try:
            return Retrier(self.retry, on_retry=self._note_retry).call(upload, _classify)
        except _Transient as exc:
            raise RegistryError(
                f"registry {self.host}: upload of {digest[:19]}… to {repository} failed: "
                f"{exc.reason} (gave up after {self.retry.attempts} attempts)"
            ) from None

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:delete",
            ok=(202, 200),
            allow=(404,),
        )


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    if isinstance(exc, _Transient):
        return True, exc.reason, exc.retry_after
    return False, str(exc), None


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in (
        "Connection reset",
        "RemoteDisconnected",
        "IncompleteRead",
        "timed out",
        "refused",
    ):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _error_text(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.reason
    except ValueError:
        return response.reason or ""


def _parse_challenge(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        if key:
            params[key.strip()] = value.strip().strip('"')
    return params
