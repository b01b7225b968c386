"""Tests for RecordingProxy with real clients (raw sockets, urllib3, httpx) and local origins."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import urllib3

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._recording_proxy import ProxyRecord, RecordingProxy

TIMEOUT = 10.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
NOT_ALLOWED = "not a loopback address or mapped upstream"


# --- local origins ----------------------------------------------------------------------------


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    """Answer ``hello <path>`` (GET) or ``got <body>`` (POST), framed as the path asks."""

    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT

    def do_GET(self) -> None:
        self._reply(b"hello " + self.path.encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(b"got " + body)

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        elif self.path.startswith("/eof"):  # framed by closing the connection
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _OriginServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), _OriginHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        with tls:
            super().finish_request(tls, client_address)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512


@contextlib.contextmanager
def _serving(server: socketserver.TCPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        address = server.server_address
        assert isinstance(address, tuple)
        yield address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def origin_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def origin_ca_file(origin_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("origin") / "ca.pem"
    origin_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def http_origin() -> Iterator[int]:
    with _serving(_OriginServer(None)) as port:
        yield port


@pytest.fixture(scope="module")
def https_origin(origin_ca: trustme.CA) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    origin_ca.issue_cert("api.example.com", "localhost", "127.0.0.1").configure_cert(context)
    with _serving(_OriginServer(context)) as port:
        yield port


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with _serving(_EchoServer(("127.0.0.1", 0), _EchoHandler)) as port:
        yield port


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    with RecordingProxy(timeout=TIMEOUT) as running:
        yield running


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Collect (and fail) every name lookup or connect to anything but loopback."""
    attempts: list[object] = []
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            attempts.append(host)
            raise OSError(f"test guard: no lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test guard: no connection to {address!r}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempts


# --- client helpers ---------------------------------------------------------------------------


def _proxy_socket(proxy: RecordingProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT)
    if not proxy.tls:
        return sock
    context = ssl.create_default_context(cafile=proxy.ca_file)
    try:
        return context.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _recv_exact(sock: socket.socket, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _connect(sock: socket.socket, authority: str, extra: bytes = b"") -> tuple[int, bytes]:
    """Send CONNECT (and ``extra`` right behind it); return the status and what followed."""
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode() + extra)
    head, rest = _read_head(sock)
    return int(head.split(b" ", 2)[1]), rest


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` through an established tunnel and read as many bytes back.

    A plain socket is then half-closed and must see the end of the stream. A TLS socket is not:
    ``SSLSocket.shutdown`` would drop the TLS layer to the proxy.
    """
    sock.sendall(payload)
    echoed = _recv_exact(sock, len(payload))
    if not isinstance(sock, ssl.SSLSocket):
        sock.shutdown(socket.SHUT_WR)
        assert _recv_all(sock) == b""
    return echoed


def _get(sock: socket.socket, url: str, extra_headers: str = "") -> tuple[int, bytes]:
    """Send one absolute-form GET and read its Content-Length framed response."""
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: ignored\r\n{extra_headers}\r\n".encode())
    head, rest = _read_head(sock)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, _recv_exact(sock, length, rest)


def _close_pool(manager: urllib3.ProxyManager, url: str) -> None:
    """Close the pooled connection for ``url`` now: ``clear()`` leaves that to the GC."""
    manager.connection_from_url(url).close()


def _proxy_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("Recording")]


def _one(records: list[ProxyRecord]) -> ProxyRecord:
    assert len(records) == 1, records
    return records[0]


# --- tunnels and forwarding -------------------------------------------------------------------


def test_connect_tunnel_is_recorded_with_status_and_bytes(
    proxy: RecordingProxy, echo_port: int
) -> None:
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"127.0.0.1:{echo_port}")
        assert (status, rest) == (200, b"")
        assert _echo(sock, b"ping!") == b"ping!"
        client = sock.getsockname()[:2]

    record = _one(proxy.wait_for(1))
    assert record.method == "CONNECT"
    assert record.authority == f"127.0.0.1:{echo_port}"
    assert (record.host, record.port, record.path) == ("127.0.0.1", echo_port, None)
    assert record.client == client
    assert (record.status, record.bytes_up, record.bytes_down, record.error) == (200, 5, 5, None)
    assert record.end is not None
    assert record.end >= record.start
    assert proxy.tunnels == [record]


def test_bytes_sent_right_behind_connect_are_relayed(proxy: RecordingProxy, echo_port: int) -> None:
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"localhost:{echo_port}", extra=b"early")
        assert status == 200
        sock.shutdown(socket.SHUT_WR)
        assert rest + _recv_all(sock) == b"early"

    record = _one(proxy.wait_for(1))
    assert (record.host, record.bytes_up, record.bytes_down) == ("localhost", 5, 5)


def test_https_through_a_tunnel_with_urllib3(
    proxy: RecordingProxy, https_origin: int, origin_ca_file: str
) -> None:
    url = f"https://localhost:{https_origin}/secure"
    with urllib3.ProxyManager(proxy.url, ca_certs=origin_ca_file) as manager:
        response = manager.request("GET", url)
        _close_pool(manager, url)
    assert (response.status, response.data) == (200, b"hello /secure")

    record = _one(proxy.wait_for(1))
    assert (record.method, record.authority, record.status) == (
        "CONNECT",
        f"localhost:{https_origin}",
        200,
    )
    assert record.bytes_up > 0
    assert record.bytes_down > len(b"hello /secure")


def test_absolute_form_get_is_forwarded_and_recorded(
    proxy: RecordingProxy, http_origin: int
) -> None:
    with urllib3.ProxyManager(proxy.url) as manager:
        response = manager.request("GET", f"http://127.0.0.1:{http_origin}/path?q=1")
    assert (response.status, response.data) == (200, b"hello /path?q=1")
    # RFC 9112: the Host header comes from the absolute-form target.
    assert response.headers["X-Seen-Host"] == f"127.0.0.1:{http_origin}"

    record = _one(proxy.wait_for(1))
    assert (record.method, record.path, record.status, record.error) == (
        "GET",
        "/path?q=1",
        200,
        None,
    )
    assert (record.bytes_up, record.bytes_down) == (0, len(b"hello /path?q=1"))


def test_keep_alive_serves_three_requests_on_one_client_connection(
    proxy: RecordingProxy, http_origin: int
) -> None:
    base = f"http://127.0.0.1:{http_origin}"
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=TIMEOUT) as client:
        bodies = [client.get(f"{base}{path}").content for path in ("/a", "/chunked", "/eof")]
    assert bodies == [b"hello /a", b"hello /chunked", b"hello /eof"]

    records = proxy.wait_for(3)
    assert [record.path for record in records] == ["/a", "/chunked", "/eof"]
    assert {record.status for record in records} == {200}
    assert len({record.client for record in records}) == 1


def test_raw_keep_alive_and_connection_close(proxy: RecordingProxy, http_origin: int) -> None:
    with _proxy_socket(proxy) as sock:
        for index in range(3):
            assert _get(sock, f"http://127.0.0.1:{http_origin}/{index}") == (
                200,
                f"hello /{index}".encode(),
            )
        assert _get(sock, f"http://127.0.0.1:{http_origin}/last", "Connection: close\r\n")[0] == 200
        assert _recv_all(sock) == b""
    assert len(proxy.wait_for(4)) == 4


def test_request_bodies_sized_and_chunked_are_forwarded(
    proxy: RecordingProxy, http_origin: int
) -> None:
    url = f"http://127.0.0.1:{http_origin}/post"
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=TIMEOUT) as client:
        sized = client.post(url, content=b"abc")
        chunked = client.post(url, content=iter([b"ab", b"cd"]))
    assert (sized.content, chunked.content) == (b"got abc", b"got abcd")

    records = proxy.wait_for(2)
    assert [(record.method, record.bytes_up) for record in records] == [("POST", 3), ("POST", 4)]


# --- TLS to the proxy -------------------------------------------------------------------------


def test_tls_proxy_is_verified_with_its_ca_file(
    http_origin: int, https_origin: int, origin_ca: trustme.CA
) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        assert proxy.url == f"https://localhost:{proxy.port}"
        assert Path(proxy.ca_file).read_bytes() == proxy.ca_pem
        proxy_context = ssl.create_default_context(cafile=proxy.ca_file)
        origin_context = ssl.create_default_context()
        origin_ca.configure_trust(origin_context)
        with httpx.Client(
            proxy=httpx.Proxy(proxy.url, ssl_context=proxy_context),
            verify=origin_context,
            trust_env=False,
            timeout=TIMEOUT,
        ) as client:
            tunnelled = client.get(f"https://localhost:{https_origin}/tls-in-tls")
            forwarded = client.get(f"http://127.0.0.1:{http_origin}/over-tls")
        assert tunnelled.content == b"hello /tls-in-tls"
        assert forwarded.content == b"hello /over-tls"
        records = proxy.wait_for(2)
        assert [record.method for record in records] == ["CONNECT", "GET"]
        assert proxy.tls_errors == []
        ca_file = proxy.ca_file
    assert not os.path.exists(ca_file)


def test_tls_proxy_works_with_urllib3(https_origin: int, origin_ca_file: str) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        proxy_context = ssl.create_default_context(cafile=proxy.ca_file)
        with urllib3.ProxyManager(
            proxy.url, proxy_ssl_context=proxy_context, ca_certs=origin_ca_file
        ) as manager:
            url = f"https://localhost:{https_origin}/u3"
            response = manager.request("GET", url)
            _close_pool(manager, url)
        assert response.data == b"hello /u3"
        assert _one(proxy.wait_for(1)).status == 200


def test_client_refusing_the_proxy_certificate_is_counted(http_origin: int) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        untrusting = ssl.create_default_context()  # the system roots, without the proxy's CA
        with (
            httpx.Client(
                proxy=httpx.Proxy(proxy.url, ssl_context=untrusting),
                trust_env=False,
                timeout=TIMEOUT,
            ) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get(f"http://127.0.0.1:{http_origin}/")
        assert len(proxy.wait_for_tls_errors(1)) >= 1
        assert proxy.records == []


# --- upstream mapping and the loopback-only rule ----------------------------------------------


def test_upstreams_send_real_names_to_local_fakes_without_dns(
    https_origin: int, http_origin: int, origin_ca_file: str, outbound: list[object]
) -> None:
    upstreams = {
        "api.example.com:443": ("127.0.0.1", https_origin),
        "plain.example.com": ("localhost", http_origin),
    }
    with (
        RecordingProxy(upstreams=upstreams, timeout=TIMEOUT) as proxy,
        urllib3.ProxyManager(proxy.url, ca_certs=origin_ca_file) as manager,
    ):
        secure = manager.request("GET", "https://api.example.com/v1/ping")
        plain = manager.request("GET", "http://plain.example.com:8080/x")
        _close_pool(manager, "https://api.example.com/")
        records = proxy.wait_for(2)

    assert (secure.status, secure.data) == (200, b"hello /v1/ping")
    assert (plain.data, plain.headers["X-Seen-Host"]) == (b"hello /x", "plain.example.com:8080")
    assert [(record.method, record.authority, record.status) for record in records] == [
        ("CONNECT", "api.example.com:443", 200),
        ("GET", "plain.example.com:8080", 200),
    ]
    assert outbound == []


@pytest.mark.parametrize(
    "authority", ["example.com:443", "10.1.2.3:443", "[2001:db8::1]:443", "api.example.com:8443"]
)
def test_connect_to_anything_but_loopback_or_mapped_is_refused(
    authority: str, https_origin: int, outbound: list[object]
) -> None:
    upstreams = {"api.example.com:443": ("127.0.0.1", https_origin)}
    with RecordingProxy(upstreams=upstreams, timeout=TIMEOUT) as proxy:
        with _proxy_socket(proxy) as sock:
            status, rest = _connect(sock, authority)
            body = rest + _recv_all(sock)
        record = _one(proxy.wait_for(1))
    assert status == 403
    assert NOT_ALLOWED in body.decode()
    assert (record.authority, record.status) == (authority, 403)
    assert record.error is not None
    assert NOT_ALLOWED in record.error
    assert outbound == []


def test_forwarding_to_anything_but_loopback_is_refused(
    proxy: RecordingProxy, outbound: list[object]
) -> None:
    with _proxy_socket(proxy) as sock:
        status, body = _get(sock, "http://example.com/")
        # The refusal keeps the client connection usable.
        assert _get(sock, "http://10.0.0.1:8080/")[0] == 403
    assert status == 403
    assert NOT_ALLOWED in body.decode()
    records = proxy.wait_for(2)
    assert [(record.authority, record.status) for record in records] == [
        ("example.com:80", 403),
        ("10.0.0.1:8080", 403),
    ]
    assert outbound == []


def test_malformed_targets_are_answered_400_and_recorded(proxy: RecordingProxy) -> None:
    with _proxy_socket(proxy) as sock:
        status, _ = _get(sock, "/origin-form")
        assert status == 400
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, "no-port.example")[0] == 400
    records = proxy.wait_for(2)
    assert [(record.authority, record.host, record.status) for record in records] == [
        ("/origin-form", "", 400),
        ("no-port.example", "", 400),
    ]
    assert all(record.error for record in records)


# --- faults -----------------------------------------------------------------------------------


def test_refuse_answers_the_given_status_until_cleared(
    proxy: RecordingProxy, echo_port: int, http_origin: int
) -> None:
    proxy.refuse("127.0.0.1")
    proxy.refuse(f"localhost:{http_origin}", status=451)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 403
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://LOCALHOST:{http_origin}/")[0] == 451
        proxy.clear_faults()
        assert _get(sock, f"http://localhost:{http_origin}/")[0] == 200

    records = proxy.wait_for(3)
    assert [record.status for record in records] == [403, 451, 200]
    assert [bool(record.error) for record in records] == [True, True, False]


def test_fail_upstream_answers_502(proxy: RecordingProxy, echo_port: int, http_origin: int) -> None:
    proxy.fail_upstream("127.0.0.1")
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 502
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://127.0.0.1:{http_origin}/")[0] == 502
    records = proxy.wait_for(2)
    assert [record.status for record in records] == [502, 502]
    assert all(record.error and "fail_upstream" in record.error for record in records)


def test_unreachable_upstream_answers_502(proxy: RecordingProxy) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with _proxy_socket(proxy) as sock:
            assert _connect(sock, f"127.0.0.1:{port}")[0] == 502
    record = _one(proxy.wait_for(1))
    assert record.status == 502
    assert record.error is not None


def test_close_mid_tunnel_right_after_establishing(proxy: RecordingProxy, echo_port: int) -> None:
    proxy.close_mid_tunnel("127.0.0.1")
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"127.0.0.1:{echo_port}")
        assert status == 200
        assert rest + _recv_all(sock) == b""
    record = _one(proxy.wait_for(1))
    assert (record.status, record.bytes_up, record.bytes_down) == (200, 0, 0)
    assert record.error is not None
    assert "fault injection" in record.error


def test_close_mid_tunnel_after_some_bytes(proxy: RecordingProxy, echo_port: int) -> None:
    proxy.close_mid_tunnel(f"127.0.0.1:{echo_port}", after_bytes=3)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        sock.sendall(b"hello")
        assert _recv_all(sock) == b""
    record = _one(proxy.wait_for(1))
    assert (record.bytes_up, record.bytes_down) == (3, 0)
    assert record.error is not None


def test_latency_delays_the_answer(proxy: RecordingProxy, http_origin: int, echo_port: int) -> None:
    proxy.add_latency(0.05)
    proxy.add_latency(0.3, host=f"127.0.0.1:{http_origin}")  # a host's delay wins
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://127.0.0.1:{http_origin}/slow")[0] == 200
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        assert _echo(sock, b"x") == b"x"
    slow, tunnel = proxy.wait_for(2)
    assert slow.duration is not None
    assert slow.duration >= 0.3
    assert tunnel.duration is not None
    assert tunnel.duration >= 0.05


def test_fault_arguments_are_checked(proxy: RecordingProxy) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        proxy.refuse("example.com", status=200)
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.close_mid_tunnel("example.com", after_bytes=-1)
    with pytest.raises(ValueError, match="seconds"):
        proxy.add_latency(-1.0)


# --- scale and shutdown -----------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_one_hundred_concurrent_tunnels(tls: bool, echo_port: int) -> None:
    count = 100
    open_at_barrier: list[int] = []
    errors: list[BaseException] = []
    with RecordingProxy(tls=tls, timeout=TIMEOUT) as proxy:

        def count_open() -> None:
            open_at_barrier.append(sum(not tunnel.done for tunnel in proxy.tunnels))

        barrier = threading.Barrier(count, action=count_open, timeout=TIMEOUT)

        def client(index: int) -> None:
            try:
                with _proxy_socket(proxy) as sock:
                    assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
                    barrier.wait()
                    payload = f"tunnel {index:03}".encode()
                    assert _echo(sock, payload) == payload
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=client, args=(index,)) for index in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 2)
        assert errors == []
        records = proxy.wait_for(count, timeout=TIMEOUT)

    assert open_at_barrier == [count]
    assert len(records) == count
    assert {(record.status, record.bytes_up, record.bytes_down) for record in records} == {
        (200, 10, 10)
    }


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stop_is_fast_and_leaves_nothing_behind(
    tls: bool, echo_port: int, http_origin: int
) -> None:
    proxy = RecordingProxy(tls=tls, timeout=TIMEOUT).start()
    port = proxy.port
    with contextlib.ExitStack() as stack:
        tunnels = [stack.enter_context(_proxy_socket(proxy)) for _ in range(3)]
        for sock in tunnels:
            assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        keep_alive = stack.enter_context(_proxy_socket(proxy))
        assert _get(keep_alive, f"http://127.0.0.1:{http_origin}/")[0] == 200
        proxy.add_latency(30.0, host="slow.example")
        slow = stack.enter_context(_proxy_socket(proxy))
        slow.sendall(b"CONNECT slow.example:443 HTTP/1.1\r\n\r\n")
        # A connection that never sends a byte (for TLS: never starts its handshake).
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", port), TIMEOUT))
        proxy.wait_for(lambda records: len(records) == 5, timeout=TIMEOUT)

        started = time.monotonic()
        proxy.stop()
        elapsed = time.monotonic() - started

        assert elapsed < 1.0
        assert _proxy_threads() == []
        for sock in [*tunnels, keep_alive, slow, silent]:
            assert _recv_all(sock) == b""
    assert all(record.done for record in proxy.records)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    proxy.stop()  # a second stop is harmless


# --- API surface ------------------------------------------------------------------------------


def test_url_repr_and_properties() -> None:
    proxy = RecordingProxy()
    assert repr(proxy) == "<RecordingProxy not started tls=False records=0>"
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.url
    with pytest.raises(RuntimeError, match="tls=True"):
        _ = proxy.ca_pem
    with proxy:
        assert (proxy.scheme, proxy.host, proxy.tls) == ("http", "127.0.0.1", False)
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        assert repr(proxy) == f"<RecordingProxy {proxy.url} tls=False records=0>"
        with pytest.raises(RuntimeError, match="once"):
            proxy.start()
    with pytest.raises(RuntimeError, match="once"):
        proxy.start()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_ipv6_listener(tls: bool, echo_port: int) -> None:
    with RecordingProxy(host="::1", tls=tls, timeout=TIMEOUT) as proxy:
        assert proxy.url == f"{proxy.scheme}://[::1]:{proxy.port}"
        with _proxy_socket(proxy) as sock:
            assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
            assert _echo(sock, b"v6") == b"v6"
        record = _one(proxy.wait_for(1))
    assert record.client[0] == "::1"


def test_seen_matches_host_or_exact_authority(
    proxy: RecordingProxy, http_origin: int, echo_port: int
) -> None:
    with _proxy_socket(proxy) as sock:
        _get(sock, f"http://localhost:{http_origin}/")
        _get(sock, f"http://127.0.0.1:{http_origin}/")
    with _proxy_socket(proxy) as sock:
        _connect(sock, f"127.0.0.1:{echo_port}")
    proxy.wait_for(3)
    assert len(proxy.seen("LocalHost")) == 1
    assert len(proxy.seen("127.0.0.1")) == 2
    assert [record.method for record in proxy.seen(f"127.0.0.1:{echo_port}")] == ["CONNECT"]
    assert proxy.seen("localhost:1") == []
    proxy.clear()
    assert proxy.records == []


def test_wait_for_takes_a_predicate_and_times_out(proxy: RecordingProxy, echo_port: int) -> None:
    with pytest.raises(TimeoutError, match="timed out"):
        proxy.wait_for(1, timeout=0.05)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200

        def open_tunnel(records: list[ProxyRecord]) -> bool:
            return any(record.status == 200 and not record.done for record in records)

        assert len(proxy.wait_for(open_tunnel)) == 1
        assert _echo(sock, b"done") == b"done"
    assert proxy.wait_for(lambda records: all(record.done for record in records))[0].done


def test_constructor_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RecordingProxy(host="0.0.0.0")
    with pytest.raises(ValueError, match="never resolves"):
        RecordingProxy(upstreams={"api.example.com": ("origin.internal", 443)})


def test_tls_without_trustme_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(MissingExtraError, match=r"carto-proxy\[testing\]"):
        RecordingProxy(tls=True)
