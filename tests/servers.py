"""A small local HTTP server for tests: serves media, misbehaves on demand, and records webhook deliveries.

It listens on 127.0.0.1 on an ephemeral port, in a daemon thread. Routes map a path to replies::

    with http_server() as srv:
        srv.serve("/a.png", png_bytes)                       # 200 with these bytes
        srv.route("/gone", Reply(status=404))
        srv.redirect("/r", srv.url("/a.png"))                # 302 to an absolute or relative Location
        srv.route("/slow", Reply(body=b"x" * 10, chunk_bytes=1, chunk_delay_s=1.0))
        srv.route("/liar", Reply(body=b"x", declared_length=10**12))
        srv.route("/endless", Reply(body=b"x" * 65536, endless=True))
        srv.route("/hook", Reply(status=500), Reply(status=500), Reply(status=204))  # fail twice, then ok
        ...  # code under test uses srv.url("/a.png")
        hooks = srv.wait_for_requests("/hook", 3, timeout_s=5)   # Recorded(method, path, headers, body)

Several replies for one route are used one per request, the last one repeating. A route may also be a
function ``Recorded -> Reply``. Every request (any method) is recorded with its headers and body; unknown
paths answer 404. ``HTTPTestServer`` is also a context manager; in a fixture write
``with http_server() as srv: yield srv``. Pass an ``ssl.SSLContext`` to serve https. ``closed_port()``
gives a local port nobody listens on.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One canned response."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Sleep before sending the status line (to test timeouts waiting for a response).
    delay_s: float = 0.0
    #: The body is written in pieces of this size, sleeping ``chunk_delay_s`` between them.
    chunk_bytes: int = 64 * 1024
    chunk_delay_s: float = 0.0
    #: Send this Content-Length instead of the real one (a lie), then the body, then close.
    declared_length: int | None = None
    #: Use Transfer-Encoding: chunked (no Content-Length).
    chunked: bool = False
    #: Repeat ``body`` as chunked data until the client goes away or the server stops.
    endless: bool = False


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str  # with the query string
    headers: Message  # case-insensitive: ``headers["content-type"]``
    body: bytes
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Recorded], Reply]


class HTTPTestServer:
    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[Recorded] = []
        self._stopping = threading.Event()
        self._httpd = _Server((host, 0), _make_handler(self))
        self._httpd.ssl_context = ssl_context
        self.scheme = "https" if ssl_context else "http"
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    # -- configuration -----------------------------------------------------------------------------
    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Answer ``path`` with ``replies`` one per request (the last one repeats), or with a function."""
        if len(replies) == 1 and callable(replies[0]):
            handler = replies[0]
        else:
            queue = [r for r in replies if isinstance(r, Reply)] or [Reply()]
            count = iter(range(1 << 62))
            lock = threading.Lock()

            def handler(_: Recorded) -> Reply:
                with lock:
                    return queue[min(next(count), len(queue) - 1)]

        with self._lock:
            self._routes[path] = handler

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream", **kw: Any) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        headers = {"Content-Type": content_type, **kw.pop("headers", {})}
        self.route(path, Reply(body=body, headers=headers, **kw))
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.route(path, Reply(status=status, headers={"Location": location}))
        return self.url(path)

    # -- inspection ---------------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path.split("?")[0] == path]

    def wait_for_requests(self, path: str | None, count: int, timeout_s: float = 5.0) -> list[Recorded]:
        """Block until ``count`` requests reached ``path`` (for asynchronous deliveries such as webhooks)."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while len(got := [r for r in self._requests if path is None or r.path.split("?")[0] == path]) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)} of {count} requests to {path!r} after {timeout_s}s")
                self._changed.wait(left)
            return got

    # -- lifecycle ----------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HTTPTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler ------------------------------------------------------------------------
    def _record(self, req: Recorded) -> Handler | None:
        with self._changed:
            self._requests.append(req)
            self._changed.notify_all()
            return self._routes.get(req.path.split("?")[0])


@contextmanager
def http_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[HTTPTestServer]:
    server = HTTPTestServer(ssl_context=ssl_context)
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A local port with nothing listening on it (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:  # the handshake then runs in the handler thread, not the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on slow or endless bodies is the point of several tests


def _make_handler(owner: HTTPTestServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            req = Recorded(self.command, self.path, self.headers, self._read_body(), time.monotonic())
            handler = owner._record(req)
            reply = handler(req) if handler else Reply(status=404, body=b"no such route")
            self._send(reply)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, r: Reply) -> None:
            if r.delay_s and owner._stopping.wait(r.delay_s):
                return
            self.send_response(r.status)
            for k, v in r.headers.items():
                self.send_header(k, v)
            chunked = r.chunked or r.endless
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                length = len(r.body) if r.declared_length is None else r.declared_length
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            pieces = [r.body[i : i + r.chunk_bytes] for i in range(0, len(r.body), max(1, r.chunk_bytes))]
            while True:
                for i, piece in enumerate(pieces):
                    if i and r.chunk_delay_s and owner._stopping.wait(r.chunk_delay_s):
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    self.wfile.flush()
                if not r.endless or owner._stopping.is_set() or not pieces:
                    break
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

    return _Handler
