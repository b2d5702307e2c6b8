"""HTTP service: `/` greets and says where it runs, `/health` answers for HEALTHCHECK.

Standard library only, so the image builds offline. Stops cleanly on SIGTERM (docker stop).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = os.environ.get("APP_VERSION", "dev")


def index() -> dict[str, Any]:
    return {
        "service": "sample-app",
        "version": VERSION,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "sample-app"
    sys_version = ""

    def do_GET(self) -> None:
        routes = {"/": index, "/health": lambda: {"status": "ok"}}
        route = routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found", "path": self.path})
        else:
            self._send(HTTPStatus.OK, route())

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.path != "/health":  # health probes every few seconds would drown the log
            super().log_message(format, *args)


def make_server(host: str = "0.0.0.0", port: int = 8080) -> ThreadingHTTPServer:  # noqa: S104
    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    server = make_server(port=int(os.environ.get("PORT", "8080")))

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"sample-app {VERSION} listening on :{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
