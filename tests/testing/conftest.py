"""Local servers for the recording proxy's tests: HTTP and HTTPS origins, an echo server."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import LOOPBACK, TIMEOUT

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

    def guarded(connect: Any) -> Any:
        # RecordingProxy opens upstream connections itself, not through create_connection().
        def guarded_connect(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
                attempts.append(address)
                raise OSError(f"test guard: no connection to {address!r}")
            return connect(sock, address)

        return guarded_connect

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket.socket, "connect", guarded(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(socket.socket.connect_ex))
    return attempts
