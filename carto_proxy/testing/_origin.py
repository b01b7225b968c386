"""LocalOrigin: a loopback web server that answers for any host name, over HTTP and HTTPS.

One port serves both: a connection whose first byte opens a TLS handshake gets TLS, with a
certificate made on the fly for the name the client asked for (SNI), signed by a CA made for
this origin; any other connection gets plain HTTP. So a connector test can send
``https://api.example.com/`` through a :class:`RecordingProxy` (``upstreams=``) or direct (a
:class:`DirectGuard` mapping) and reach this server either way::

    with LocalOrigin() as origin, RecordingProxy(upstreams=origin.upstreams("api.example.com")):
        ...  # trust origin.ca_file (NODE_EXTRA_CA_CERTS) and send requests

Every request is recorded and answered by the function :meth:`LocalOrigin.respond_with` set,
else with what :meth:`LocalOrigin.reply` set for its path, else ``200`` with a JSON echo of
what was received.
"""

from __future__ import annotations

import json as _json  # reply() has a json= argument
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._loopback import LoopbackServer

__all__ = ["LocalOrigin", "OriginRequest"]

_TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a handshake
_MAX_BODY = 1024 * 1024
_MAX_ERRORS = 100  # connection errors kept: enough to tell why, bounded for long sessions


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginRequest:
    """One request :class:`LocalOrigin` answered.

    Attributes:
        method: the request method.
        path: the request target as sent (origin form, ``/p?q``).
        host: the ``Host`` header (``None`` when absent).
        tls: whether the request came over TLS.
        server_name: the name the client asked for in the TLS handshake (SNI); ``None`` for
            plain HTTP or when the client sent none (IP-literal URLs).
        body: the request body (a chunked one decoded), up to 1 MiB.
        client: ``(ip, port)`` of the connection: the proxy's when the request was proxied.
        headers: the request headers, names lowercased (a repeated header: its last value);
            left out of the ``repr``, as they may carry credentials.
    """

    method: str
    path: str
    host: str | None
    tls: bool
    server_name: str | None
    body: bytes
    client: tuple[str, int]
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


# What LocalOrigin.respond_with() takes: a request in, (status, headers, body) or None out.
Handler = Callable[[OriginRequest], "tuple[int, Mapping[str, str], bytes] | None"]


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK hold every answer back about 40 ms.
    disable_nagle_algorithm = True
    server: LocalOrigin  # type: ignore[assignment]

    def do_GET(self) -> None:
        self._answer(send_body=True)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        tls = isinstance(self.request, ssl.SSLSocket)
        request = OriginRequest(
            method=self.command,
            path=self.path,
            host=self.headers.get("Host"),
            tls=tls,
            server_name=self.server._server_name_of(self.request) if tls else None,
            body=self._read_body(),
            client=(str(self.client_address[0]), int(self.client_address[1])),
            headers={name.lower(): value for name, value in self.headers.items()},
        )
        self.server._record(request)
        canned = self.server._reply_for(request)
        if canned is None:
            echo = {
                "method": request.method,
                "path": request.path,
                "host": request.host,
                "tls": request.tls,
                "server_name": request.server_name,
            }
            canned = _Reply(200, {"Content-Type": "application/json"}, _json.dumps(echo).encode())
        self.send_response(canned.status)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        if send_body:
            self.wfile.write(canned.body)

    def _read_body(self) -> bytes:
        """The request body, of which at most ``_MAX_BODY`` bytes are kept.

        A body it cannot frame for sure (a bad ``Content-Length``, both ``Transfer-Encoding``
        and ``Content-Length``, a bad chunk size) or does not read whole (over the limit) ends
        the connection after the answer: what is left unread must never be taken for the next
        request on a kept-alive connection.
        """
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        length = self.headers.get("Content-Length")
        try:
            if chunked and length is None:
                return self._read_chunks()
            if chunked or not (length is None or (length.isdigit() and len(length) <= 12)):
                raise ValueError("framing in doubt")
            size = int(length or 0)
            self.close_connection = self.close_connection or size > _MAX_BODY  # not read whole
            return self.rfile.read(min(size, _MAX_BODY))
        except ValueError:
            self.close_connection = True
            return b""

    def _read_chunks(self) -> bytes:
        body = bytearray()
        while size := int(self.rfile.readline(66).split(b";")[0].strip() or b"0", 16):
            while size > 0:  # a chunk is read in pieces: its size is the client's to choose
                piece = self.rfile.read(min(size, 65536))
                if not piece:
                    raise ValueError("the body ended inside a chunk")
                body += piece[: max(0, _MAX_BODY - len(body))]
                size -= len(piece)
            self.rfile.readline(3)  # the CRLF closing the chunk
        while self.rfile.readline(65537).strip():
            pass  # trailer fields, up to the blank line
        return bytes(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read origin.requests instead


class LocalOrigin(LoopbackServer):
    """Answer HTTP and HTTPS requests for any host name on one loopback port.

    Args:
        host: loopback address to listen on.
        timeout: seconds a connection may stay idle, or take for its TLS handshake.
        ca: the ``trustme.CA`` that signs its certificates, when your tests already trust
            one; by default a CA made for this origin.

    Raises:
        MissingExtraError: ``trustme`` is not installed (extra ``testing``).
    """

    def __init__(self, *, host: str = "127.0.0.1", timeout: float = 10.0, ca: Any = None) -> None:
        try:
            import trustme
        except ImportError as error:
            raise MissingExtraError("testing", "trustme") from error
        super().__init__(
            host=host,
            port=0,
            serve=self._serve,
            name="LocalOrigin",
            backlog=256,
            ca_owner="the LocalOrigin",
        )
        self._timeout = timeout
        self._ca = trustme.CA() if ca is None else ca
        self._tls = self._context_with(self._ca.issue_cert("localhost", "127.0.0.1", "::1"))
        self._tls.sni_callback = self._pick_certificate
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[OriginRequest] = []
        self._errors: deque[Exception] = deque(maxlen=_MAX_ERRORS)
        self._replies: dict[str, _Reply] = {}
        self._handler: Handler | None = None

    def _ca_to_write(self) -> str | None:
        return self.ca_pem

    # --- where it listens and whom to trust ---------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, the value to map names to in ``RecordingProxy(upstreams=)``."""
        return self._host, self.port

    @property
    def url(self) -> str:
        """``https://localhost:PORT/`` (plain HTTP answers on the same port)."""
        host = "localhost" if self._host == "127.0.0.1" else f"[{self._host}]"
        return f"https://{host}:{self.port}/"

    def upstreams(self, *hosts: str | Iterable[str]) -> dict[str, tuple[str, int]]:
        """Return ``RecordingProxy(upstreams=)`` sending each host (any port) to this origin."""
        names: list[str] = []
        for item in hosts:
            names.extend([item] if isinstance(item, str) else item)
        return dict.fromkeys(names, self.address)

    @property
    def ca_pem(self) -> str:
        """The PEM text of the CA that signs this origin's certificates."""
        return str(self._ca.cert_pem.bytes().decode("ascii"))

    @property
    def ca_file(self) -> str:
        """A PEM file holding :attr:`ca_pem`, while the origin runs.

        Raises:
            RuntimeError: the origin is not running.
        """
        return self._ca_file.path

    # --- what it saw ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[OriginRequest]:
        """Every request answered so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[Exception]:
        """Why connections failed, the last 100 in order (a refused certificate: ``SSLError``)."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        """Forget the requests and errors recorded so far, every :meth:`reply` and the handler."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
            self._replies.clear()
            self._handler = None

    def respond_with(self, handler: Handler | None) -> None:
        """Answer every request with *handler* first, until :meth:`clear` (``None``: stop).

        *handler* receives the :class:`OriginRequest` and returns ``(status, headers, body)``,
        or ``None`` to leave the request to :meth:`reply` and the echo. It runs in the
        connection's thread; an exception it raises is answered with ``500``. For example,
        ``origin.respond_with(lambda request: (201, {}, request.body))`` echoes bodies back.
        """
        with self._lock:
            self._handler = handler

    def reply(
        self,
        path: str,
        *,
        status: int = 200,
        json: object = None,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer requests for ``path`` (query string ignored), whatever the host, like this.

        Args:
            path: the path to answer, e.g. ``"/v1/geocode"``.
            status: the status to answer with.
            json: a value to send as JSON (``Content-Type: application/json``); wins over body.
            body: the body to send otherwise.
            headers: more response headers (``Location`` for a redirect...).
        """
        sent = dict(headers or {})
        if json is not None:
            body = _json.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._replies[path] = _Reply(status, sent, data)

    def _reply_for(self, request: OriginRequest) -> _Reply | None:
        """Return what the handler, else the reply set for the request's path, answers."""
        with self._lock:
            handler, reply = self._handler, self._replies.get(request.path.partition("?")[0])
        if handler is None:
            return reply
        try:
            answer = handler(request)
        except Exception as error:  # the test's own bug: say so to the client, keep serving
            return _Reply(500, {}, f"{type(error).__name__}: {error}".encode())
        return reply if answer is None else _Reply(*answer)

    def _record(self, request: OriginRequest) -> None:
        """Record one answered request (called by the request handler)."""
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _server_name_of(self, sock: ssl.SSLSocket) -> str | None:
        """Return the SNI name a TLS connection asked for."""
        with self._lock:
            return self._names.get(id(sock))

    # --- TLS ------------------------------------------------------------------------------------

    @staticmethod
    def _context_with(cert: Any) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _pick_certificate(self, sock: Any, name: str | None, _: ssl.SSLContext) -> None:
        if name is None:
            return  # no SNI: the default certificate, for localhost and the loopback IPs
        name = name.lower()
        with self._lock:
            self._names[id(sock)] = name
            context = self._contexts.get(name)
        if context is None:
            try:
                context = self._context_with(self._ca.issue_cert(name))
            except ValueError:
                return  # not a name a certificate can hold; the client will refuse the default
            with self._lock:
                context = self._contexts.setdefault(name, context)
        sock.context = context

    # --- connections ----------------------------------------------------------------------------

    def _serve(self, conn: socket.socket, client: tuple[str, int]) -> None:
        sock = conn
        try:
            conn.setblocking(True)
            conn.settimeout(self._timeout)
            first = conn.recv(1, socket.MSG_PEEK)
            if first and first[0] == _TLS_HANDSHAKE:
                sock = self._tls.wrap_socket(conn, server_side=True)
                if not self._server.track(sock, replacing=conn):
                    return
            if first:
                # The handler calls only _record, _reply_for and _server_name_of on its "server".
                _Handler(sock, client, self)  # type: ignore[arg-type]
        except (OSError, ValueError) as error:
            # The client went away, refused the certificate or timed out: kept for errors.
            with self._lock:
                self._errors.append(error)
        finally:
            self._server.untrack(sock)
            with self._lock:
                self._names.pop(id(sock), None)
            sock.close()

    def __repr__(self) -> str:
        where = f"{self._host}:{self.port}" if self._server.port is not None else "not started"
        return f"<LocalOrigin {where} requests={len(self.requests)}>"
