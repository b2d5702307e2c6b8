"""A registry that answers wrongly, on purpose: malformed auth challenges, token endpoints that
answer HTML, truncated or invalid manifests, wrong content types. Plain HTTP on loopback (the
product's client falls back to it for loopback hosts, as docker and Trivy do).

`BadRegistry(scenario)` is a context manager; `host` is what PIPELINE_REGISTRY gets.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Scenario = Literal[
    "bearer-without-realm",
    "token-not-json",
    "truncated-manifest",
    "html-manifest",
    "manifest-as-text",
    "index-entries-without-media-type",
]
SCENARIOS: tuple[Scenario, ...] = (
    "bearer-without-realm",
    "token-not-json",
    "truncated-manifest",
    "html-manifest",
    "manifest-as-text",
    "index-entries-without-media-type",
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DIGEST = "sha256:" + "1" * 64


class BadRegistry:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(f"GET {self.path}")
                status, headers, body = outer.answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        scenario = self.scenario
        if scenario == "bearer-without-realm" and path.startswith("/v2/"):
            return 401, {"WWW-Authenticate": 'Bearer service="registry"'}, b"{}"
        if scenario == "token-not-json":
            if path.startswith("/token"):
                return 200, {"Content-Type": "text/html"}, b"<html><body>sign in</body></html>"
            if path.startswith("/v2/") and not authorization:
                realm = f"http://{self.host}/token"
                challenge = f'Bearer realm="{realm}",service="registry"'
                return 401, {"WWW-Authenticate": challenge}, b"{}"
        if path in ("/v2/", "/v2"):
            return 200, {"Content-Type": "application/json"}, b"{}"
        if "/manifests/" in path:
            return self._manifest()
        return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND"}]}'

    def _manifest(self) -> tuple[int, dict[str, str], bytes]:
        if self.scenario == "truncated-manifest":
            return 200, {"Content-Type": OCI_INDEX}, b'{"schemaVersion": 2, "manifests": [{"dig'
        if self.scenario == "html-manifest":
            return 200, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
        if self.scenario == "manifest-as-text":
            return 200, {"Content-Type": "text/plain"}, b'{"schemaVersion": 2}'
        # index-entries-without-media-type: valid JSON of the right type, entries malformed
        body = b'{"schemaVersion":2,"mediaType":"' + OCI_INDEX.encode()
        body += b'","manifests":[{"digest":"' + DIGEST.encode() + b'"}]}'
        return 200, {"Content-Type": OCI_INDEX}, body

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
