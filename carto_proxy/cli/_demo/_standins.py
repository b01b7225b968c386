"""The demo's stand-ins: loopback servers answering for CARTO's external services.

One port speaks HTTPS (a certificate for every stand-in name, from a CA made for the demo) and
plain HTTP (a connection whose first byte is not a TLS handshake); it answers Snowflake's login
and BigQuery's dataset list well enough for their drivers to succeed, and echoes anything
else. A gRPC server answers ``/carto_proxy.demo.Demo/Ping`` with raw bytes (no protobuf). Each
records who asked for what. Both stop within about a second. :class:`LoopbackNames` makes the
stand-in names resolve to them in this process, and no other name resolve at all.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._direct import DirectGuard

__all__ = [
    "GRPC_METHOD",
    "DemoCA",
    "GrpcStandIn",
    "HttpStandIn",
    "LoopbackNames",
    "StandInRequest",
]

GRPC_METHOD = "/carto_proxy.demo.Demo/Ping"
_LOOPBACK = "127.0.0.1"
_TLS_HANDSHAKE = 0x16
_IDLE = 2.0  # seconds a kept-alive connection may stay idle
_MAX_BODY = 1024 * 1024
_NOT_A_STAND_IN = "it is not one of the demo's stand-ins, and the demo does no DNS"


class DemoCA:
    """A CA made for one demo run, and one server certificate for every stand-in name."""

    def __init__(self, names: Sequence[str]) -> None:
        try:
            import trustme
        except ImportError as error:
            raise MissingExtraError("testing", "trustme") from error
        self._ca = trustme.CA(organization_name="carto-proxy demo")
        self._leaf = self._ca.issue_cert(*names, _LOOPBACK)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, for the clients' trust store."""
        return bytes(self._ca.cert_pem.bytes())

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the stand-in certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._leaf.configure_cert(context)
        return context

    def key_and_chain(self) -> tuple[bytes, bytes]:
        """The private key and certificate chain PEM, for gRPC."""
        chain = b"".join(blob.bytes() for blob in self._leaf.cert_chain_pems)
        return bytes(self._leaf.private_key_pem.bytes()), chain


@dataclass(frozen=True, slots=True, kw_only=True)
class StandInRequest:
    """One request a stand-in answered."""

    method: str
    host: str  # the Host header (or gRPC peer) as received
    path: str
    tls: bool
    client: str  # ip:port of the connection: the proxy's when proxied


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE
    server: _Server

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, _MAX_BODY))
        host = self.headers.get("Host") or ""
        self.server.owner.record(
            StandInRequest(
                method=self.command,
                host=host,
                path=self.path,
                tls=isinstance(self.connection, ssl.SSLSocket),
                client=f"{self.client_address[0]}:{self.client_address[1]}",
            )
        )
        body = json.dumps(_answer(self.path, host)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the demo prints its own log."""


def _answer(path: str, host: str) -> dict[str, Any]:
    """What the services would answer, as far as their clients need it."""
    if path.startswith("/session/v1/login-request"):  # Snowflake login
        return {
            "success": True,
            "data": {
                "token": "demo-session-token",
                "masterToken": "demo-master-token",
                "validityInSeconds": 3600,
                "masterValidityInSeconds": 14400,
                "sessionId": 1,
                "parameters": [],
                "sessionInfo": {"roleName": "PUBLIC"},
            },
        }
    if path.startswith(("/session", "/telemetry")):  # Snowflake logout, telemetry
        return {"success": True, "data": None, "message": None, "code": None}
    if path.partition("?")[0].endswith("/datasets"):  # BigQuery datasets.list
        return {"kind": "bigquery#datasetList", "datasets": []}
    return {"stand_in": host, "path": path}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: HttpStandIn) -> None:
        self.owner = owner
        super().__init__((_LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a reverse DNS lookup the demo never does.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = _LOOPBACK, int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        self.owner.track(conn, add=True)
        try:
            conn.settimeout(_IDLE)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first[0] == _TLS_HANDSHAKE:
                conn = self.owner.context.wrap_socket(conn, server_side=True)
                self.owner.track(conn, add=True)
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        except OSError:
            pass  # a client that went away or refused the certificate
        finally:
            self.owner.track(conn, add=False)
            self.owner.track(request, add=False)
            if conn is not request:
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client hanging up is not the demo's business."""


class HttpStandIn:
    """HTTP and HTTPS on one loopback port; see the module docstring."""

    def __init__(self, ca: DemoCA) -> None:
        self.context = ca.server_context()
        self._lock = threading.Lock()
        self._requests: list[StandInRequest] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HttpStandIn:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="carto-proxy-demo-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)  # wakes a blocked handler
        self._thread.join(1.0)
        self._server = self._thread = None

    @property
    def address(self) -> tuple[str, int]:
        """``(ip, port)`` it listens on."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return _LOOPBACK, self._server.server_port

    @property
    def requests(self) -> list[StandInRequest]:
        """Every request answered so far."""
        with self._lock:
            return list(self._requests)

    def record(self, request: StandInRequest) -> None:
        """Record one answered request (called by the handler)."""
        with self._lock:
            self._requests.append(request)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Keep track of open connections, so that stopping can close them."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class GrpcStandIn:
    """A TLS gRPC server on loopback answering :data:`GRPC_METHOD` with ``b"pong"``."""

    def __init__(self, ca: DemoCA, grpc: Any) -> None:
        self._grpc = grpc
        self._ca = ca
        self._lock = threading.Lock()
        self._requests: list[StandInRequest] = []
        self._server: Any = None
        self._port = 0

    def __enter__(self) -> GrpcStandIn:
        grpc = self._grpc

        def ping(request: bytes, context: Any) -> bytes:
            with self._lock:
                self._requests.append(
                    StandInRequest(
                        method="gRPC",
                        host=context.peer(),
                        path=GRPC_METHOD,
                        tls=True,
                        client=context.peer(),
                    )
                )
            return b"pong"

        service, _, method = GRPC_METHOD[1:].partition("/")
        handler = grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(ping)}
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials([self._ca.key_and_chain()])
        self._port = self._server.add_secure_port(f"{_LOOPBACK}:0", credentials)
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(1.0)
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        """``(ip, port)`` it listens on."""
        return _LOOPBACK, self._port

    @property
    def requests(self) -> list[StandInRequest]:
        """Every call answered so far."""
        with self._lock:
            return list(self._requests)


class LoopbackNames(DirectGuard):
    """Resolve the stand-in names to their ``(ip, port)`` in this process; refuse every other name.

    A :class:`~carto_proxy.testing.DirectGuard` that also maps ``localhost`` to 127.0.0.1, so
    that no name ever reaches a resolver. gRPC resolves names in C and is not covered: the demo
    dials it by address.
    """

    def __init__(self, names: Mapping[str, tuple[str, int]]) -> None:
        super().__init__({"localhost": _LOOPBACK, **names}, hint=_NOT_A_STAND_IN)
