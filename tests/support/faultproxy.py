"""A fault-injecting reverse proxy for an OCI registry, for tests (aiohttp).

It listens on 127.0.0.1, terminates TLS with the registry's own certificate (its SAN is
127.0.0.1, valid on any port, so whoever trusts the registry's CA trusts the proxy), forwards
every request to the registry, and on a schedule answers 500/503, 429 with Retry-After, resets a
connection in the middle of a blob, or stalls. Loopback only; every fault is counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class Request:
    method: str
    path: str  # with query
    agent: str


@dataclass
class Fault:
    """Inject `kind` into requests matching `when`: `times` of them, or all with persistent=True."""

    kind: str  # "500" | "503" | "429" | "reset" | "slow"
    when: Callable[[Request], bool]
    times: int = 1
    persistent: bool = False
    label: str = ""
    spaced: bool = True  # False: eligible on every request, whatever the schedule's spacing
    # Only every Nth request this fault matches is broken: the retry of a broken request (the
    # next match) goes through, however many other clients' requests come in between.
    every: int = 1
    matched: int = 0

    def take(self, request: Request) -> bool:
        if not self.when(request):
            return False
        if self.persistent:
            return True
        self.matched += 1
        if self.times > 0 and (self.matched - 1) % self.every == 0:
            self.times -= 1
            return True
        return False


@dataclass
class Schedule:
    """Faults to inject. With `every=N` only every Nth request may fail, so one operation never
    meets more consecutive faults than a client's retry policy allows."""

    faults: list[Fault] = field(default_factory=list)
    every: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: int = 0

    def pick(self, request: Request) -> Fault | None:
        with self.lock:
            self.seen += 1
            eligible = [f for f in self.faults if not f.spaced or self.seen % self.every == 0]
            return next((f for f in eligible if f.take(request)), None)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()


# Predicates for the usual targets.
def by_agent(fragment: str) -> Callable[[Request], bool]:
    return lambda r: fragment in r.agent.lower()


TAG_PUT = re.compile(r"^/v2/.+/manifests/(?!sha256:)[^/]+$")


def tag_put(request: Request) -> bool:
    return request.method == "PUT" and bool(TAG_PUT.match(request.path.split("?", 1)[0]))


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        cert: Path | None,
        key: Path | None,
        ca_file: Path | None,
        schedule: Schedule,
    ) -> None:
        self.upstream = upstream.rstrip("/")  # https://127.0.0.1:PORT
        self.cert, self.key, self.ca_file = cert, key, ca_file
        self.schedule = schedule
        self.injected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.agents: Counter[str] = Counter()  # which clients came through (for diagnostics)
        self.log: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._cut: list[asyncio.BaseTransport] = []  # connections it broke: ended at shutdown

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        # Connections broken on purpose finish closing on the next turns of the loop.
        self._loop.run_until_complete(asyncio.sleep(0.2))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._tls: ssl.SSLContext | None = None
        if self.cert and self.key:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(self.cert, self.key)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._connections: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())
        client_ssl = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ssl), auto_decompress=False
        )

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            task = loop.create_task(self._dispatch(conn))
            self._connections.add(task)  # a strong reference until it finishes
            task.add_done_callback(self._connections.discard)

    async def _dispatch(self, conn: socket.socket) -> None:
        """Like a Go TLS server, answer plain HTTP on the TLS port with a 400 (go-containerregistry
        races https and http pings for loopback registries; an ambiguous answer could win)."""
        loop = asyncio.get_running_loop()
        assert self._runner is not None and self._runner.server is not None
        if self._tls is not None:
            readable = loop.create_future()

            def ready() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(conn.fileno(), ready)
            try:
                await asyncio.wait_for(readable, 30)
            except TimeoutError:
                conn.close()
                return
            finally:
                loop.remove_reader(conn.fileno())
            first = conn.recv(1, socket.MSG_PEEK)  # peeked, not consumed: TLS still sees it
            if first != b"\x16":  # not a TLS handshake record
                conn.setblocking(True)
                with contextlib.suppress(OSError):
                    conn.sendall(
                        b"HTTP/1.0 400 Bad Request\r\n\r\n"
                        b"Client sent an HTTP request to an HTTPS server.\n"
                    )
                conn.close()
                return
        await loop.connect_accepted_socket(self._runner.server, conn, ssl=self._tls)

    async def _shutdown(self) -> None:
        self._accepting.cancel()
        self._listener.close()
        for transport in self._cut:  # a TLS close waits for the peer; do not wait past shutdown
            transport.abort()  # type: ignore[attr-defined]
        await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.sleep(0.25)  # aiohttp: let SSL transports finish closing

    # -- proxying -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._proxy(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # recorded for the test's assertion messages, then a 502
            self.log.append(f"proxy error on {request.method} {request.path}: {exc!r}")
            return web.Response(status=502, text=f"proxy error: {exc!r}")

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        info = Request(request.method, request.path_qs, request.headers.get("User-Agent", ""))
        self.requests[info.method] += 1
        self.agents[info.agent.split("/")[0].split(" ")[0]] += 1
        fault = self.schedule.pick(info)
        if fault is not None and fault.kind != "reset":
            self.injected[fault.kind] += 1
            self.log.append(f"{fault.kind} {info.method} {info.path} ({info.agent[:40]})")
            if fault.kind == "slow":
                await asyncio.sleep(2)
                fault = None  # stalled, then answered normally
            elif fault.kind == "429":
                return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
            else:
                return web.Response(status=int(fault.kind), text="injected fault")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=io.BytesIO(body) if body else None,  # a stream: big blobs never block the loop
            allow_redirects=False,
        ) as upstream:
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream_host = self.upstream.split("://", 1)[1]
            if "Location" in out_headers:
                out_headers["Location"] = out_headers["Location"].replace(upstream_host, self.host)
            if fault is not None and request.method != "GET":
                # The request reached the registry but the answer is lost: the client must retry
                # an operation that may already have happened.
                self.injected["reset"] += 1
                self.log.append(f"reset {info.method} {info.path} ({info.agent[:40]})")
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=502)
            if fault is not None:  # cut in the middle of a body
                self.injected["reset"] += 1
                self.log.append(f"reset {info.method} {info.path} ({info.agent[:40]})")
                whole = await upstream.read()
                # Written straight to the connection: status, headers announcing the whole body,
                # half of it, then EOF. (aiohttp's own response would buffer and be dropped.)
                head = [f"HTTP/1.1 {upstream.status} {upstream.reason}"]
                head += [f"{k}: {v}" for k, v in out_headers.items()]
                head += [f"Content-Length: {len(whole)}", "Connection: close", "", ""]
                transport = request.transport
                if transport is not None:
                    transport.write("\r\n".join(head).encode() + whole[: len(whole) // 2])
                    transport.close()
                    self._cut.append(transport)
                raise web.HTTPException()  # nothing more to send on a closed connection
            payload = await upstream.read()
            if request.method == "HEAD":
                # A HEAD answer's Content-Length is the size of what a GET would return; clients
                # (go-containerregistry) read descriptors from it.
                length = upstream.headers.get("Content-Length")
                response = web.Response(status=upstream.status, headers=out_headers)
                if length is not None:
                    response.headers["Content-Length"] = length
                return response
            return web.Response(status=upstream.status, headers=out_headers, body=payload)
