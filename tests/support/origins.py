"""Local origin servers on 127.0.0.1: plain HTTP, HTTPS (origin CA) and untrusted HTTPS.

Each answers every request with 200 and ``{"origin": name, "path": ..., "host": ...}`` over
HTTP/1.1 keep-alive, and records ``(method, path, host, client)`` for every request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple

from tests.support.names import LOOPBACK
from tests.support.pki import PKI
from tests.support.polling import first_match

_STOP_TIMEOUT = 1.0
_HANDSHAKE_TIMEOUT = 5.0


class OriginRequest(NamedTuple):
    """One request an origin server answered."""

    method: str
    path: str
    host: str | None
    """The Host header as received (``None`` if absent)."""
    client: tuple[str, int]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections must not pin a handler thread for the whole session.
    timeout = 10
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK hold each answer back about 40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        self._discard_body()
        host = self.headers.get("Host")
        self.server.record(
            OriginRequest(
                self.command, self.path, host, (self.client_address[0], self.client_address[1])
            )
        )
        body = json.dumps({"origin": self.server.name, "path": self.path, "host": host}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _discard_body(self) -> None:
        # The body must be consumed, or the next request on a kept-alive connection is garbage.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request log is in ``OriginServer.requests``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, context: ssl.SSLContext | None) -> None:
        self.name = name
        self.context = context
        self.lock = threading.Lock()
        self.requests: list[OriginRequest] = []
        self.errors: list[BaseException] = []
        self.connections: set[socket.socket] = set()
        self.handlers: set[threading.Thread] = set()
        super().__init__((LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup we must not do.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def record(self, request: OriginRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Our own threads (not ThreadingMixIn's) so stop() can join them with a deadline.
        thread = threading.Thread(
            target=self._run,
            args=(request, client_address),
            name=f"origin-{self.name}-{client_address[1]}",
            daemon=True,
        )
        with self.lock:
            self.handlers.add(thread)
        thread.start()

    def _run(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.handlers.discard(threading.current_thread())

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        self._track(conn, add=True)
        try:
            if self.context is not None:
                # Handshake here, in the connection's thread: a client that never completes
                # it must not block the accept loop.
                conn.settimeout(_HANDSHAKE_TIMEOUT)
                self._track(conn, add=False)
                conn = self.context.wrap_socket(conn, server_side=True)
                self._track(conn, add=True)
                conn.settimeout(None)
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            self._track(conn, add=False)
            if conn is not request:
                conn.close()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self.lock:
            if add:
                self.connections.add(conn)
            else:
                self.connections.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes (clients that distrust the certificate) are expected: keep them
        # for assertions instead of printing tracebacks.
        error = sys.exc_info()[1]
        if error is not None:
            with self.lock:
                self.errors.append(error)

    def close_connections(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            # socket.socket.shutdown on the fd wakes a blocked reader; SSLSocket.shutdown would
            # tear down TLS state under the handler thread's feet.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)


class OriginServer:
    """A threaded HTTP(S) origin on 127.0.0.1 with an ephemeral port; use as a context manager."""

    def __init__(self, name: str, *, context: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.scheme = "https" if context is not None else "http"
        self._context = context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OriginServer:
        """Bind and start serving; return self."""
        if self._server is not None:
            raise RuntimeError(f"origin {self.name!r} already started")
        self._server = _Server(self.name, self._context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"origin-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections and join every thread within 1 s."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        deadline = time.monotonic() + _STOP_TIMEOUT
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(max(0.0, deadline - time.monotonic()))
        with server.lock:
            handlers = list(server.handlers)
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in (thread, *handlers) if t.is_alive()]
        self._server = self._thread = None
        if alive:
            raise RuntimeError(f"origin {self.name!r} threads still alive after stop: {alive}")

    def __enter__(self) -> OriginServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError(f"origin {self.name!r} is not running")
        return self._server

    @property
    def port(self) -> int:
        """The ephemeral port the server listens on."""
        return self._running.server_port

    @property
    def url(self) -> str:
        """``<scheme>://127.0.0.1:<port>``, without a trailing slash."""
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def url_for(self, host: str, path: str = "/") -> str:
        """Return this server's URL under another host name, e.g. ``api.example.test``."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def requests(self) -> list[OriginRequest]:
        """A snapshot of every request answered since start (or the last :meth:`clear`)."""
        server = self._running
        with server.lock:
            return list(server.requests)

    @property
    def errors(self) -> list[BaseException]:
        """Connection errors so far, e.g. ``ssl.SSLError`` from clients that rejected the cert."""
        server = self._running
        with server.lock:
            return list(server.errors)

    def hosts_seen(self) -> set[str]:
        """Return the host names (Host header, lowercased, port removed) of requests so far."""
        return {_host_name(r.host) for r in self.requests if r.host}

    def clear(self) -> None:
        """Forget recorded requests and errors."""
        server = self._running
        with server.lock:
            server.requests.clear()
            server.errors.clear()

    def wait_for(
        self, predicate: Callable[[OriginRequest], bool], timeout: float = 5.0
    ) -> OriginRequest:
        """Poll the request log until ``predicate`` matches an entry; fail after ``timeout``."""
        return first_match(
            lambda: self.requests,
            predicate,
            timeout,
            failure=lambda: (
                f"origin {self.name!r}: no matching request within {timeout}s; saw {self.requests}"
            ),
        )

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<OriginServer {self.name!r} {where}>"


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True, slots=True, kw_only=True)
class Origins:
    """The three origin servers a test session needs."""

    http: OriginServer
    """Plain HTTP, ``name="http"``."""
    https: OriginServer
    """HTTPS with ``pki.origin_cert``, ``name="https"``."""
    untrusted: OriginServer
    """HTTPS with ``pki.untrusted_cert``, ``name="untrusted"``."""

    def clear(self) -> None:
        """Forget every server's recorded requests."""
        for server in (self.http, self.https, self.untrusted):
            server.clear()


@contextlib.contextmanager
def start_origins(pki: PKI) -> Iterator[Origins]:
    """Start the plain, HTTPS and untrusted HTTPS origins; stop them all on exit."""
    with (
        OriginServer("http") as http,
        OriginServer("https", context=pki.origin_cert.server_context()) as https,
        OriginServer("untrusted", context=pki.untrusted_cert.server_context()) as untrusted,
    ):
        yield Origins(http=http, https=https, untrusted=untrusted)
