"""Tests of shared.fetch against a real local server.

Only 127.0.0.1 (and, where a test proves a refusal or pinning, nothing else) is ever contacted: every
refused address is refused before any connection, and a fake resolver is used only to simulate DNS.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from shared.errors import (
    DecodeFailed,
    EmptyMedia,
    FetchConnectionError,
    FetchError,
    FetchTimeout,
    JobCanceled,
    MediaTooLarge,
    TooManyRedirects,
    UnsupportedMedia,
    UpstreamHTTPError,
    UrlNotAllowed,
)
from shared.fetch import FetchResult, fetch_to_file, save_stream
from shared.settings import FetchSettings
from tests.servers import HTTPTestServer, Reply, closed_port, http_server

BODY = bytes(range(256)) * 400  # 102400 bytes
LOCAL = FetchSettings(allow_networks=("127.0.0.1/32",), connect_timeout_s=2, read_timeout_s=2, total_timeout_s=10)
CAP = 1 << 20


@pytest.fixture
def srv() -> Iterator[HTTPTestServer]:
    with http_server() as server:
        yield server


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "media.bin"


@pytest.fixture(autouse=True)
def no_foreign_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything tries to connect anywhere but loopback (a refusal came too late)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if not str(address[0]).startswith("127."):
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def fails(exc_type: type[Exception], url: str, dest: Path, settings: FetchSettings = LOCAL, **kw: Any) -> Any:
    with pytest.raises(exc_type) as info:
        fetch_to_file(url, dest, max_bytes=kw.pop("max_bytes", CAP), settings=settings)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial or temporary file left behind
    return info.value


# -- the happy path -------------------------------------------------------------------------------------


def test_downloads_file_with_digest_and_head(srv: HTTPTestServer, dest: Path) -> None:
    result = fetch_to_file(srv.serve("/a.bin", BODY), dest, max_bytes=CAP, settings=LOCAL)
    assert result == FetchResult(len(BODY), hashlib.sha256(BODY).hexdigest(), BODY[:64], srv.url("/a.bin"), 0)
    assert dest.read_bytes() == BODY
    (req,) = srv.requests("/a.bin")
    assert req.headers["User-Agent"] == LOCAL.user_agent
    assert req.headers["Accept-Encoding"] == "identity"
    assert req.headers["Cookie"] is None and req.headers["Authorization"] is None
    assert req.headers["Host"] == f"127.0.0.1:{srv.port}"


def test_gzip_is_decoded_and_decoded_bytes_count_against_the_cap(srv: HTTPTestServer, dest: Path) -> None:
    srv.serve("/z", gzip.compress(BODY), headers={"Content-Encoding": "gzip"})
    assert fetch_to_file(srv.url("/z"), dest, max_bytes=CAP, settings=LOCAL).size_bytes == len(BODY)
    dest.unlink()
    srv.serve("/bomb", gzip.compress(b"\0" * (50 << 20)), headers={"Content-Encoding": "gzip"})  # ~50 KB
    fails(MediaTooLarge, srv.url("/bomb"), dest)


GZ = gzip.compress(BODY[:50_000])


@pytest.mark.parametrize(
    "encoding, data, expected",
    [
        ("gzip", GZ + gzip.compress(BODY[50_000:]), BODY),  # two members
        ("gzip", GZ + b"\0" * 8, BODY[:50_000]),  # padding after a member is ignored
        ("deflate", zlib.compress(BODY), BODY),
        ("gzip", gzip.compress(b"\0" * 900_000), b"\0" * 900_000),  # 1000:1, output comes in capped pieces
        ("identity", BODY, BODY),
        ("gzip", GZ[:-20], DecodeFailed),  # truncated
        ("gzip", b"not gzip at all", DecodeFailed),
        ("br", b"whatever", UnsupportedMedia),
    ],
)
def test_content_encodings(encoding: str, data: bytes, expected: Any, srv: HTTPTestServer, dest: Path) -> None:
    srv.serve("/enc", data, headers={"Content-Encoding": encoding}, chunk_bytes=4096)
    if isinstance(expected, bytes):
        fetch_to_file(srv.url("/enc"), dest, max_bytes=CAP, settings=LOCAL)
        assert dest.read_bytes() == expected
    else:
        fails(expected, srv.url("/enc"), dest)


# -- SSRF: schemes and addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/_x",
        "data:text/plain,hi",
        "//127.0.0.1/x",
        "http:///x",
        "http://user:pw@127.0.0.1/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1/a b",
    ],
)
def test_refuses_bad_urls(url: str, dest: Path) -> None:
    fails(UrlNotAllowed, url, dest)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
        "[2001:0:4136:e378:8000:63bf:f5ff:fffe]",  # Teredo with client 10.0.0.1
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[fe80::1]",
        "[fd00::1]",
        "0.0.0.0",
        "224.0.0.1",
        "2130706433",  # decimal 127.0.0.1: getaddrinfo (inet_aton) resolves it
        "0177.0.0.1",  # octal
        "0x7f.1",
        "127.1",
    ],
)
def test_refuses_non_public_addresses_by_default(host: str, srv: HTTPTestServer, dest: Path) -> None:
    srv.serve("/a.bin", BODY)
    fails(UrlNotAllowed, f"http://{host}:{srv.port}/a.bin", dest, FetchSettings())
    assert srv.requests() == []


def test_refuses_when_any_resolved_address_is_private(monkeypatch: pytest.MonkeyPatch, dest: Path) -> None:
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80)) for ip in ("8.8.8.8", "10.0.0.1")]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    fails(UrlNotAllowed, "http://mixed.test/", dest, FetchSettings())


def test_redirects_are_checked_on_every_hop(srv: HTTPTestServer, dest: Path) -> None:
    srv.redirect("/to-loopback2", f"http://127.0.0.2:{srv.port}/a.bin")  # loopback, but not 127.0.0.1/32
    srv.redirect("/to-private", "http://10.0.0.1/")
    srv.redirect("/to-file", "file:///etc/passwd")
    for path in ("/to-loopback2", "/to-private", "/to-file"):
        fails(UrlNotAllowed, srv.url(path), dest)


def test_redirect_limit(srv: HTTPTestServer, dest: Path) -> None:
    srv.serve("/end", BODY)
    for i in range(4):
        srv.redirect(f"/r{i}", f"/r{i + 1}" if i < 3 else "/end", status=(301, 302, 307, 308)[i])
    result = fetch_to_file(srv.url("/r1"), dest, max_bytes=CAP, settings=LOCAL)
    assert (result.redirects, result.final_url, result.size_bytes) == (3, srv.url("/end"), len(BODY))
    dest.unlink()
    fails(TooManyRedirects, srv.url("/r0"), dest)
    assert len(srv.requests("/end")) == 1  # the 4-hop chain never reached it


def test_connects_to_the_checked_address_not_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch, srv: HTTPTestServer, dest: Path
) -> None:
    # DNS rebinding: the first answer passes the check, later answers would point elsewhere (127.0.0.2,
    # where nothing listens and which is outside the allowlist). A fetch that re-resolved would fail.
    lookups = fake_dns(monkeypatch, "media.test", ["127.0.0.1", "127.0.0.2"])
    srv.serve("/a.bin", BODY)
    result = fetch_to_file(f"http://media.test:{srv.port}/a.bin", dest, max_bytes=CAP, settings=LOCAL)
    assert result.size_bytes == len(BODY) and lookups == ["127.0.0.1"]
    assert srv.requests("/a.bin")[0].headers["Host"] == f"media.test:{srv.port}"


def fake_dns(monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> list[str]:
    real, given = socket.getaddrinfo, []

    def getaddrinfo(host: str, port: Any, *args: Any, **kw: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kw)
        given.append(answers[min(len(given), len(answers) - 1)])
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (given[-1], int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


# -- TLS: pinned IP, hostname for SNI and verification --------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:media.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=media.test")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return d


@pytest.mark.parametrize("name, ok", [("media.test", True), ("other.test", False)])
def test_https_verifies_the_hostname_while_connecting_to_the_pinned_ip(
    pki: Path, name: str, ok: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "leaf.pem", pki / "leaf.key")
    settings = dataclasses.replace(LOCAL, ca_certs=str(pki / "ca.pem"))
    lookups = fake_dns(monkeypatch, name, ["127.0.0.1", "127.0.0.2"])
    with http_server(ssl_context=ctx) as server:
        server.serve("/a.bin", BODY)
        url = f"https://{name}:{server.port}/a.bin"
        if ok:
            assert fetch_to_file(url, tmp_path / "a", max_bytes=CAP, settings=settings).size_bytes == len(BODY)
            assert server.requests("/a.bin")[0].headers["Host"] == f"media.test:{server.port}"
        else:  # the certificate is for media.test, so other.test must fail verification
            assert type(fails(FetchError, url, tmp_path / "a", settings)) is FetchError  # not transient
    assert lookups == ["127.0.0.1"]


# -- caps, timeouts and upstream errors -----------------------------------------------------------------


def test_declared_length_over_the_cap_is_refused_before_reading(srv: HTTPTestServer, dest: Path) -> None:
    srv.route("/huge", Reply(body=b"x" * 10, declared_length=10**12, chunk_bytes=1, chunk_delay_s=5))
    started = time.monotonic()
    fails(MediaTooLarge, srv.url("/huge"), dest)
    assert time.monotonic() - started < 1


def test_endless_stream_stops_at_the_cap(srv: HTTPTestServer, dest: Path) -> None:
    srv.route("/endless", Reply(body=b"y" * 65536, endless=True))
    fails(MediaTooLarge, srv.url("/endless"), dest, max_bytes=300_000)


def test_on_bytes_can_abort_a_download(srv: HTTPTestServer, dest: Path) -> None:
    """A canceled job stops its download at the next chunk, leaving nothing behind."""
    srv.route("/endless", Reply(body=b"y" * 65536, endless=True))
    seen: list[int] = []

    def on_bytes(total: int) -> None:
        seen.append(total)
        if total > 200_000:
            raise JobCanceled("canceled")

    with pytest.raises(JobCanceled):
        fetch_to_file(srv.url("/endless"), dest, max_bytes=CAP, settings=LOCAL, on_bytes=on_bytes)
    assert seen == sorted(seen) and 200_000 < seen[-1] < CAP
    assert list(dest.parent.iterdir()) == []


def test_slow_server_times_out(srv: HTTPTestServer, dest: Path) -> None:
    quick = dataclasses.replace(LOCAL, read_timeout_s=0.5)
    srv.route("/slow-body", Reply(body=b"z" * 4, chunk_bytes=1, chunk_delay_s=1.0))
    srv.route("/slow-head", Reply(body=b"z", delay_s=1.0))
    fails(FetchTimeout, srv.url("/slow-body"), dest, quick)
    fails(FetchTimeout, srv.url("/slow-head"), dest, quick)


def test_trickle_cannot_outlast_the_total_budget(srv: HTTPTestServer, dest: Path) -> None:
    budget = dataclasses.replace(LOCAL, read_timeout_s=1.0, total_timeout_s=1.0)
    srv.route("/drip", Reply(body=b"d" * 100, chunk_bytes=1, chunk_delay_s=0.1))  # 10 s, always "reading"
    started = time.monotonic()
    fails(FetchTimeout, srv.url("/drip"), dest, budget)
    assert time.monotonic() - started < 2


def test_headers_dripped_forever_cannot_outlast_the_total_budget(dest: Path) -> None:
    # Each header line arrives well within the read timeout; only the wall-clock watchdog can stop this.
    budget = dataclasses.replace(LOCAL, read_timeout_s=1.0, total_timeout_s=1.0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(0.1):
                    conn.sendall(b"X-Drip: 1\r\n")
            except OSError:
                pass  # the client hung up, as it should

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        fails(FetchTimeout, f"http://127.0.0.1:{listener.getsockname()[1]}/", dest, budget)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("status, transient", [(404, False), (403, False), (500, True), (503, True), (429, True)])
def test_upstream_errors(status: int, transient: bool, srv: HTTPTestServer, dest: Path) -> None:
    srv.route("/e", Reply(status=status, body=b"nope"))
    err = fails(UpstreamHTTPError, srv.url("/e"), dest)
    assert (err.status, err.transient) == (status, transient)


def test_connection_refused(dest: Path) -> None:
    err = fails(FetchConnectionError, f"http://127.0.0.1:{closed_port()}/", dest)
    assert err.transient


def test_empty_body(srv: HTTPTestServer, dest: Path) -> None:
    srv.serve("/empty", b"")
    fails(EmptyMedia, srv.url("/empty"), dest)


def test_truncated_body_is_a_connection_error(srv: HTTPTestServer, dest: Path) -> None:
    srv.route("/short", Reply(body=b"x" * 10, declared_length=100))
    fails(FetchConnectionError, srv.url("/short"), dest)


# -- uploads ---------------------------------------------------------------------------------------------


def test_save_stream(dest: Path) -> None:
    result = save_stream(io.BytesIO(BODY), dest, max_bytes=CAP)
    assert result == FetchResult(len(BODY), hashlib.sha256(BODY).hexdigest(), BODY[:64], "upload:", 0)
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize("data, exc", [(b"", EmptyMedia), (b"x" * 1001, MediaTooLarge)])
def test_save_stream_failures_leave_nothing(data: bytes, exc: type[Exception], dest: Path) -> None:
    with pytest.raises(exc):
        save_stream(io.BytesIO(data), dest, max_bytes=1000)
    assert list(dest.parent.iterdir()) == []


# -- the test server itself (reused by webhook and end-to-end tests) -------------------------------------


def test_server_records_posts_and_answers_per_attempt(srv: HTTPTestServer) -> None:
    srv.route("/hook", Reply(status=500), Reply(status=500), Reply(status=204))
    http = urllib3.PoolManager(retries=False)
    statuses = [
        http.request("POST", srv.url("/hook?n=1"), json={"i": i}, headers={"X-Signature": f"s{i}"}).status
        for i in range(4)
    ]
    assert statuses == [500, 500, 204, 204]
    hooks = srv.wait_for_requests("/hook", 4, timeout_s=1)
    assert [h.json() for h in hooks] == [{"i": i} for i in range(4)]
    assert hooks[0].method == "POST" and hooks[0].path == "/hook?n=1"
    assert hooks[3].headers["x-signature"] == "s3" and hooks[3].headers["Content-Type"] == "application/json"
    with pytest.raises(TimeoutError):
        srv.wait_for_requests("/hook", 5, timeout_s=0.1)
    assert http.request("GET", srv.url("/nothing-here")).status == 404
    http.clear()
