"""Safe fetching of user-supplied media URLs, and the same byte-capped sink for uploads.

Threat model. Anyone who can submit a job can make a worker issue HTTP requests, so a URL is hostile:

* SSRF. It may point at the cloud metadata service (169.254.169.254), the worker's own loopback services
  (Redis, the API), the private network, or hide those behind DNS, redirects, IPv4-mapped/6to4/Teredo/NAT64
  IPv6 forms or odd spellings (``http://2130706433/``, ``http://0177.0.0.1/``). We therefore resolve the
  name ourselves, refuse the URL if *any* resolved address is not globally routable (unless it lies in
  ``FetchSettings.allow_networks``), and connect to exactly an address we checked: the TCP connection goes
  to the IP, while the ``Host`` header, TLS SNI and certificate verification keep the original hostname.
  A second lookup by the HTTP library (DNS rebinding) is impossible because it never sees the name.
  Redirects are followed by hand, at most ``max_redirects`` hops, and every hop is checked again.
* Resource exhaustion. The body may be endless, lie about its length, trickle one byte at a time or be a
  gzip bomb. We refuse a declared ``Content-Length`` above the cap before reading, count bytes while
  streaming (after content decoding: we ask for ``identity`` but decode gzip/deflate ourselves in bounded
  pieces if a server sends it anyway), and enforce connect/read timeouts plus a wall-clock budget. The budget
  is enforced by a watchdog that shuts the socket down, so a server dripping headers cannot outlast it.
  DNS resolution itself is bounded only by the system resolver's timeout.
* Leaks. No cookies, credentials or proxies (urllib3 reads no environment), URLs with userinfo are refused,
  connections are closed after each hop, and on any error nothing is left at ``dest``.

Errors are translated to ``shared.errors`` at this boundary. This module imports neither flask nor celery.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from shared.errors import (
    DecodeFailed,
    EmptyMedia,
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    MediaTooLarge,
    TooManyRedirects,
    UnsupportedMedia,
    UpstreamHTTPError,
)
from shared.netpolicy import Network, Target, allow_networks, resolve
from shared.settings import FetchSettings
from shared.sniff import SNIFF_BYTES

_CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchResult:
    size_bytes: int
    sha256: str
    head: bytes
    final_url: str
    redirects: int


def fetch_to_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    settings: FetchSettings,
    on_bytes: Callable[[int], None] | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` under the SSRF, redirect, time and byte limits described above.

    The body is written to a temporary sibling and renamed to ``dest`` on success; on any error neither
    exists afterwards (a ``dest`` that existed before is removed too: it would have been overwritten).
    ``on_bytes`` is called with the running byte count after each chunk; it may raise (e.g. ``JobCanceled``)
    to abort the download.
    """
    deadline = _Deadline(settings.total_timeout_s)
    allow = allow_networks(settings)
    fill = lambda sink: _download(url, sink, deadline, allow, max_bytes, settings)  # noqa: E731
    return _write_atomically(dest, fill, on_bytes)


def save_stream(stream: IO[bytes], dest: Path, *, max_bytes: int) -> FetchResult:
    """Copy an uploaded file to ``dest`` with the same byte cap, digest and cleanup as ``fetch_to_file``."""

    def copy(sink: _Sink) -> tuple[str, int]:
        while chunk := stream.read(_CHUNK_BYTES):
            sink.write(chunk, max_bytes)
        return "upload:", 0

    return _write_atomically(dest, copy)


# -- sink ---------------------------------------------------------------------------------------------


class _Sink:
    """Writes to a file while counting, hashing and keeping the head; refuses to grow past the cap."""

    def __init__(self, file: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> None:
        self.file, self.size, self.head, self.digest = file, 0, b"", hashlib.sha256()
        self.on_bytes = on_bytes

    def write(self, data: bytes, max_bytes: int) -> None:
        self.size += len(data)
        if self.size > max_bytes:
            raise MediaTooLarge(f"media exceeds the cap of {max_bytes} bytes", max_bytes=max_bytes)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.digest.update(data)
        self.file.write(data)
        if self.on_bytes is not None:
            self.on_bytes(self.size)


def _write_atomically(
    dest: Path, fill: Callable[[_Sink], tuple[str, int]], on_bytes: Callable[[int], None] | None = None
) -> FetchResult:
    # A temporary sibling renamed into place: readers never see a partial file, and on any failure
    # (including BaseException such as a Celery time limit) neither the temporary file nor dest remains.
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            sink = _Sink(file, on_bytes)
            final_url, redirects = fill(sink)
        if sink.size == 0:
            raise EmptyMedia("the media is empty (0 bytes)")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise
    return FetchResult(sink.size, sink.digest.hexdigest(), sink.head, final_url, redirects)


# -- the download loop ----------------------------------------------------------------------------------


def _download(
    url: str, sink: _Sink, deadline: _Deadline, allow: tuple[Network, ...], max_bytes: int,
    settings: FetchSettings,
) -> tuple[str, int]:
    redirects = 0
    while True:
        target = Target.parse(url)
        addresses = resolve(target, allow)
        conn, resp = _open(target, addresses, deadline, settings)
        try:
            location = resp.headers.get("Location")
            if resp.status in _REDIRECTS and location:
                if redirects >= settings.max_redirects:
                    raise TooManyRedirects(f"more than {settings.max_redirects} redirects", url=url)
                url = urljoin(url, location.strip())
                redirects += 1
                continue
            if not 200 <= resp.status < 300:
                raise UpstreamHTTPError(f"upstream answered HTTP {resp.status}", resp.status)
            _stream_body(resp, sink, deadline, max_bytes)
            return url, redirects
        finally:
            deadline.disarm()
            resp.close()  # the response holds the socket's file; closing only the connection leaks the fd
            conn.close()


def _stream_body(resp: urllib3.BaseHTTPResponse, sink: _Sink, deadline: _Deadline, max_bytes: int) -> None:
    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > max_bytes:
        raise MediaTooLarge(f"declared size {int(declared)} exceeds the cap of {max_bytes} bytes", max_bytes=max_bytes)
    decode = _decoder(resp.headers.get("Content-Encoding", ""))
    while True:
        deadline.check()
        # read1: at most one socket read per call, so the budget is checked between every few bytes.
        try:
            raw = resp.read1(_CHUNK_BYTES, decode_content=False)
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # only network errors: disk errors stay as they are
            raise _translate(exc, deadline) from exc
        for piece in decode(raw):
            sink.write(piece, max_bytes)
        if not raw:
            if deadline.fired:  # the watchdog's shutdown looks like a clean end of an unsized body
                raise FetchTimeout("the download exceeded its total time budget")
            return


def _decoder(content_encoding: str) -> Callable[[bytes], Iterator[bytes]]:
    """Per-chunk decoder; output comes in pieces of at most ``_CHUNK_BYTES`` so a bomb hits the cap early."""
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    if not encodings or encodings == ["identity"]:
        return lambda raw: iter((raw,) if raw else ())
    if len(encodings) != 1 or encodings[0] not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMedia(f"unsupported Content-Encoding {content_encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encodings[0] != "deflate" else zlib.MAX_WBITS
    obj, mid_stream, members = zlib.decompressobj(wbits), False, 0

    def decode(raw: bytes) -> Iterator[bytes]:
        nonlocal obj, mid_stream, members
        if not raw:
            if mid_stream:
                raise DecodeFailed(f"truncated {encodings[0]} content encoding")
            return
        data = raw
        while True:
            try:
                mid_stream = True
                out = obj.decompress(data, _CHUNK_BYTES)
            except zlib.error as exc:
                if members and obj.unused_data == b"" and not obj.eof:
                    mid_stream = False  # trailing garbage after a complete member, ignored like urllib3 does
                    return
                raise DecodeFailed(f"corrupt {encodings[0]} content encoding") from exc
            if out:
                yield out
            if obj.eof:  # a gzip member ended; another may follow
                data, obj, mid_stream, members = obj.unused_data, zlib.decompressobj(wbits), False, members + 1
                if not data:
                    return
            else:
                data = obj.unconsumed_tail
                # Stop once zlib used all input and had room to spare, so no output is pending inside it.
                if not data and len(out) < _CHUNK_BYTES:
                    return

    return decode


# -- connections ---------------------------------------------------------------------------------------


def _open(
    target: Target, addresses: list[str], deadline: _Deadline, settings: FetchSettings
) -> tuple[HTTPConnection, urllib3.BaseHTTPResponse]:
    """Connect to one of the checked ``addresses`` (never to the name) and send the GET."""
    last_exc: Exception | None = None
    for ip in addresses:
        conn = _connection(target, ip, min(settings.connect_timeout_s, deadline.remaining()), settings)
        try:
            conn.connect()
            deadline.arm(conn)
            conn.timeout = min(settings.read_timeout_s, deadline.remaining())
            conn.request(
                "GET", target.request_target, headers=_headers(target, settings),
                preload_content=False, decode_content=False,
            )
            return conn, conn.getresponse()
        except urllib3.exceptions.NewConnectionError as exc:  # refused or unreachable: try the next address
            conn.close()
            last_exc = exc
        except (OSError, CertificateError, urllib3.exceptions.HTTPError) as exc:
            deadline.disarm()
            conn.close()
            raise _translate(exc, deadline) from exc
        except BaseException:
            deadline.disarm()
            conn.close()
            raise
    assert last_exc is not None
    raise _translate(last_exc, deadline) from last_exc


def _connection(target: Target, ip: str, timeout_s: float, settings: FetchSettings) -> HTTPConnection:
    if target.scheme == "http":
        return HTTPConnection(ip, target.port, timeout=timeout_s)
    # The socket goes to the checked IP; SNI and certificate verification use the hostname.
    return HTTPSConnection(
        ip, target.port, timeout=timeout_s, cert_reqs="CERT_REQUIRED", ca_certs=settings.ca_certs or None,
        server_hostname=target.host.rstrip("."), assert_hostname=target.host.rstrip("."),
    )


def _headers(target: Target, settings: FetchSettings) -> dict[str, str]:
    return {
        "Host": target.host_header,
        "User-Agent": settings.user_agent,
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }


def _translate(exc: BaseException, deadline: _Deadline) -> FetchError:
    if deadline.fired:
        return FetchTimeout("the download exceeded its total time budget")
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        return FetchConnectionError(f"connection failed: {exc}")
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return FetchTimeout(f"timed out: {exc}")
    if isinstance(exc, CertificateError | ssl.SSLCertVerificationError | urllib3.exceptions.LocationParseError):
        return FetchError(f"certificate or URL error: {exc}")  # not transient: a retry will not fix it
    return FetchConnectionError(f"connection error: {exc}")


class _Deadline:
    """The total wall-clock budget; a watchdog shuts the live socket down when it runs out."""

    def __init__(self, total_s: float) -> None:
        self.end = time.monotonic() + total_s
        self.fired = False
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise FetchTimeout("the download exceeded its total time budget")
        return left

    def check(self) -> None:
        self.remaining()

    def arm(self, conn: HTTPConnection) -> None:
        sock = conn.sock
        self._timer = threading.Timer(self.remaining(), self._fire, args=(sock,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, sock: socket.socket | None) -> None:
        self.fired = True
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
