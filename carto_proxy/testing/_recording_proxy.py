"""Run a real, recording HTTP forward proxy on loopback for tests.

The proxy tunnels ``CONNECT host:port`` and forwards absolute-form ``http://`` requests, plain
or over TLS, records each one as a :class:`ProxyRecord`, sends real host names to local fakes
(``upstreams=``) and injects faults on demand. It connects only to loopback addresses and to
the mapped upstreams, and never resolves a name to decide::

    upstreams = {"api.example.com:443": ("127.0.0.1", origin_port)}
    with RecordingProxy(upstreams=upstreams) as proxy:
        httpx.Client(proxy=proxy.url, verify=origin_ctx).get("https://api.example.com/")
        (tunnel,) = proxy.wait_for(1)  # one finished record
        assert tunnel.authority == "api.example.com:443" and tunnel.status == 200
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import os
import selectors
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._serving import ConnectionServer

__all__ = ["ProxyRecord", "RecordingProxy"]

_CHUNK = 65536
_MAX_LINE = 65536
_MAX_HEADERS = 100
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        # The proxy answers 100-continue itself and sends the whole body upstream at once.
        "expect",
    }
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NOT_ALLOWED = "is not a loopback address or mapped upstream; RecordingProxy connects nowhere else"

_Key = tuple[str, int | None]
_Address = tuple[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRecord:
    """One tunnel or forwarded request, as the proxy saw it.

    Attributes:
        method: ``"CONNECT"`` for a tunnel, else the forwarded request's method.
        authority: ``host:port`` that was asked for (IPv6 hosts bracketed); the raw request
            target when it could not be parsed.
        host: the host asked for, lowercase, without brackets (``""`` when unparseable).
        port: the port asked for (``0`` when unparseable).
        path: the origin-form target sent upstream (``/p?q``); ``None`` for tunnels.
        client: ``(ip, port)`` of the client's connection to the proxy.
        status: what the proxy answered: 200 for an established tunnel, the upstream's status
            for a forwarded request, the refusal or failure status (400, 403, 502, ...)
            otherwise; ``None`` while not answered yet.
        bytes_up: payload bytes relayed client → upstream: everything after the ``200`` for a
            tunnel, the request body for a forwarded request (headers are not counted).
        bytes_down: payload bytes relayed upstream → client, counted the same way.
        start: ``time.monotonic()`` when the request head was read.
        end: ``time.monotonic()`` when the tunnel or request finished; ``None`` while open.
        error: why it was refused, failed or cut; ``None`` when it ran to completion
            (a tunnel that either side closed or reset ends without error).
    """

    method: str
    authority: str
    host: str
    port: int
    path: str | None
    client: tuple[str, int]
    status: int | None
    bytes_up: int
    bytes_down: int
    start: float
    end: float | None
    error: str | None

    @property
    def done(self) -> bool:
        """Whether the tunnel or request has finished."""
        return self.end is not None

    @property
    def duration(self) -> float | None:
        """Seconds from the request head to the end; ``None`` while open."""
        return None if self.end is None else self.end - self.start


@dataclass(slots=True, kw_only=True)
class _Entry:
    """The mutable record of a tunnel or request still in flight; guarded by the proxy lock."""

    method: str
    authority: str
    host: str
    port: int
    path: str | None
    client: tuple[str, int]
    start: float
    status: int | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    end: float | None = None
    error: str | None = None

    def snapshot(self) -> ProxyRecord:
        """Return the frozen view of this entry."""
        return ProxyRecord(
            method=self.method,
            authority=self.authority,
            host=self.host,
            port=self.port,
            path=self.path,
            client=self.client,
            status=self.status,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            start=self.start,
            end=self.end,
            error=self.error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Refusal:
    """An answer the proxy gives instead of connecting upstream."""

    status: int
    error: str


class _ProtocolError(Exception):
    """A peer sent something that is not HTTP/1.1 as this proxy understands it."""


# --- authorities ------------------------------------------------------------------------------


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port {text!r}")
    return int(text)


def _split_authority(text: str) -> _Key:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a bare IPv6 address has no port."""
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid authority {text!r}")
        port = _parse_port(rest[1:]) if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(port_text)
    else:
        host, port = text, None
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host.lower(), port


def _format_authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback_literal(host: str) -> str | None:
    """Return the address to connect to for a loopback host, without resolving any name."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


def _upstream_address(key: str, value: tuple[str, int]) -> _Address:
    host, port = value
    if host == "localhost":
        return "127.0.0.1", port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"upstreams[{key!r}] = {value!r}: give an IP address or 'localhost'; "
            "RecordingProxy never resolves names"
        ) from None
    return host, port


def _compile_upstreams(upstreams: Mapping[str, tuple[str, int]]) -> dict[_Key, _Address]:
    return {
        _split_authority(key): _upstream_address(key, value) for key, value in upstreams.items()
    }


def _lookup(table: Mapping[_Key, int], host: str, port: int) -> int | None:
    """Find the entry for ``host:port`` first, then for ``host`` on any port."""
    found = table.get((host, port))
    return table.get((host, None)) if found is None else found


# --- HTTP/1.1 framing ---------------------------------------------------------------------------


class _Reader:
    """Read lines and exact byte counts from a socket, keeping what was read ahead."""

    __slots__ = ("_buf", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def _fill(self) -> bool:
        data = self._sock.recv(_CHUNK)
        self._buf += data
        return bool(data)

    def line(self) -> bytes:
        """Return the next line with its line ending, or ``b""`` at a clean end of stream."""
        while (end := self._buf.find(b"\n")) < 0:
            if len(self._buf) > _MAX_LINE:
                raise _ProtocolError("line too long")
            if not self._fill():
                if self._buf:
                    raise _ProtocolError("connection closed in the middle of a line")
                return b""
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return line

    def exact(self, size: int) -> bytes:
        """Return exactly ``size`` bytes."""
        while len(self._buf) < size:
            if not self._fill():
                raise _ProtocolError("connection closed in the middle of a body")
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def rest(self) -> bytes:
        """Return everything up to the end of the stream."""
        while self._fill():
            pass
        return self.take()

    def take(self) -> bytes:
        """Return and forget whatever was read ahead."""
        data = bytes(self._buf)
        self._buf.clear()
        return data


@dataclass(slots=True)
class _Head:
    """A start line and its header fields, in order."""

    start: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        """Return the first value of header ``name``."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    def tokens(self, name: str) -> set[str]:
        """Return the comma-separated, lowercased tokens of every ``name`` header."""
        name = name.lower()
        return {
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == name
            for token in value.split(",")
            if token.strip()
        }

    def forwardable(self) -> list[tuple[str, str]]:
        """Return the end-to-end headers, without hop-by-hop ones or framing."""
        drop = _HOP_BY_HOP | self.tokens("connection") | {"content-length", "host"}
        return [(key, value) for key, value in self.headers if key.lower() not in drop]


def _read_head(reader: _Reader) -> _Head | None:
    start = reader.line()
    while start in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore empty lines before a request
        start = reader.line()
    if not start:
        return None
    headers: list[tuple[str, str]] = []
    while (line := reader.line()) not in (b"\r\n", b"\n"):
        name, colon, value = line.decode("latin-1").partition(":")
        if not line or not colon or not name.strip() or len(headers) >= _MAX_HEADERS:
            raise _ProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return _Head(start.decode("latin-1").strip(), headers)


def _read_chunked(reader: _Reader) -> bytes:
    body = bytearray()
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            break
        body += reader.exact(size)
        reader.line()
    while reader.line().strip():  # trailer fields are dropped
        pass
    return bytes(body)


def _read_body(reader: _Reader, head: _Head, *, until_close: bool = False) -> bytes:
    if "chunked" in head.tokens("transfer-encoding"):
        return _read_chunked(reader)
    length = head.get("content-length")
    if length is None:
        return reader.rest() if until_close else b""
    if not (length.isascii() and length.isdigit()):
        raise _ProtocolError(f"bad Content-Length {length[:20]!r}")
    return reader.exact(int(length))


def _request_line(head: _Head) -> tuple[str, str, str]:
    parts = head.start.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _ProtocolError(f"bad request line {head.start[:80]!r}")
    return parts[0], parts[1], parts[2]


def _status(head: _Head) -> tuple[int, str]:
    _, _, rest = head.start.partition(" ")
    code, _, reason = rest.partition(" ")
    if not (len(code) == 3 and code.isascii() and code.isdigit()):
        raise _ProtocolError(f"bad status line {head.start[:80]!r}")
    return int(code), reason


def _keeps_alive(head: _Head, version: str) -> bool:
    tokens = head.tokens("connection") | head.tokens("proxy-connection")
    return "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)


def _split_absolute(target: str) -> tuple[str, int, str, str]:
    """Return host, port, origin-form path and Host header of an absolute-form target."""
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ValueError(
            f"{target[:200]!r} is not an absolute-form http:// URL: a forward proxy needs one "
            "(tunnel https:// with CONNECT)"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname.lower(), parts.port or 80, path, parts.netloc.rpartition("@")[2]


def _split_connect(target: str) -> _Address:
    host, port = _split_authority(target)
    if port is None:
        raise ValueError(f"CONNECT needs host:port, got {target[:200]!r}")
    return host, port


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _encode_head(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{key}: {value}" for key, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_response(status: int, message: str, *, keep_alive: bool) -> bytes:
    body = f"{message}\n".encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "keep-alive" if keep_alive else "close"),
    ]
    return _encode_head(f"HTTP/1.1 {status} {_phrase(status)}", headers) + body


def _upstream_request(head: _Head, method: str, path: str, host: str, body: bytes) -> bytes:
    # RFC 9112 §3.2.2: a proxy replaces Host with the authority of the absolute-form target.
    headers = [("Host", host), *head.forwardable()]
    if body or method in _BODY_METHODS:
        headers.append(("Content-Length", str(len(body))))
    # One upstream connection per request keeps the framing of the response trivial.
    headers.append(("Connection", "close"))
    return _encode_head(f"{method} {path} HTTP/1.1", headers) + body


def _read_response(reader: _Reader, method: str) -> tuple[_Head, int, str, bytes]:
    while True:
        head = _read_head(reader)
        if head is None:
            raise _ProtocolError("upstream closed the connection without a response")
        status, reason = _status(head)
        if status == 101:
            raise _ProtocolError("upstream switched protocols; RecordingProxy does not upgrade")
        if status >= 200:  # skip interim responses
            break
    if method == "HEAD" or status in (204, 304):
        return head, status, reason, b""
    return head, status, reason, _read_body(reader, head, until_close=True)


def _client_response(
    head: _Head, method: str, status: int, reason: str, body: bytes, *, keep_alive: bool
) -> bytes:
    headers = head.forwardable()
    length = head.get("content-length") if method == "HEAD" else str(len(body))
    if length is not None and status not in (204, 304):
        headers.append(("Content-Length", length))
    headers.append(("Connection", "keep-alive" if keep_alive else "close"))
    return _encode_head(f"HTTP/1.1 {status} {reason}".rstrip(), headers) + body


def _wants_continue(head: _Head) -> bool:
    has_body = head.get("content-length") not in (None, "0") or "chunked" in head.tokens(
        "transfer-encoding"
    )
    return has_body and "100-continue" in head.tokens("expect")


# --- faults -------------------------------------------------------------------------------------


class _Faults:
    """Faults to inject, keyed by ``(host, port)`` or ``(host, None)``; safe to change live."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refuse: dict[_Key, int] = {}
        self._fail: dict[_Key, int] = {}
        self._cut: dict[_Key, int] = {}
        self._latency: dict[_Key, float] = {}
        self._latency_all = 0.0

    def refuse(self, key: _Key, status: int) -> None:
        with self._lock:
            self._refuse[key] = status

    def fail(self, key: _Key) -> None:
        with self._lock:
            self._fail[key] = 502

    def cut(self, key: _Key, after_bytes: int) -> None:
        with self._lock:
            self._cut[key] = after_bytes

    def latency(self, key: _Key | None, seconds: float) -> None:
        with self._lock:
            if key is None:
                self._latency_all = seconds
            else:
                self._latency[key] = seconds

    def clear(self) -> None:
        with self._lock:
            for table in (self._refuse, self._fail, self._cut, self._latency):
                table.clear()
            self._latency_all = 0.0

    def delay(self, host: str, port: int) -> float:
        with self._lock:
            found = self._latency.get((host, port), self._latency.get((host, None)))
            return self._latency_all if found is None else found

    def refusal(self, host: str, port: int) -> _Refusal | None:
        with self._lock:
            status = _lookup(self._refuse, host, port)
            failed = _lookup(self._fail, host, port)
        if status is not None:
            return _Refusal(status=status, error=f"refused by fault injection (refuse {host})")
        if failed is not None:
            return _Refusal(status=502, error=f"upstream failure injected (fail_upstream {host})")
        return None

    def cut_after(self, host: str, port: int) -> int | None:
        with self._lock:
            return _lookup(self._cut, host, port)


# --- tunnels ------------------------------------------------------------------------------------


class _Splice:
    """Relay bytes both ways between a client and an upstream, in the calling thread."""

    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        *,
        budget: int | None,
        stopping: threading.Event,
        count: Callable[[int, int], None],
    ) -> None:
        self._client = client
        self._peer = {client: upstream, upstream: client}
        self._left = budget
        self._stopping = stopping
        self._count = count
        self._over = False

    def run(self, early: bytes) -> bool:
        """Relay until both sides are done; return whether the byte budget cut the tunnel."""
        if early and self._left != 0:
            self._relay(self._client, early)
        with selectors.DefaultSelector() as selector:
            for sock in self._peer:
                selector.register(sock, selectors.EVENT_READ, sock)
            while self._running():
                for sock in self._ready(selector):
                    if self._running():
                        self._pump(selector, sock)
        return self._left == 0

    def _running(self) -> bool:
        return not self._over and self._left != 0 and not self._stopping.is_set()

    def _ready(self, selector: selectors.BaseSelector) -> list[socket.socket]:
        client = self._client
        # An SSLSocket can hold decrypted bytes that select() cannot see.
        buffered = isinstance(client, ssl.SSLSocket) and client.pending() > 0
        ready: list[socket.socket] = [
            key.data for key, _ in selector.select(0 if buffered else None)
        ]
        if buffered and client not in ready and client in selector.get_map():
            ready.append(client)
        return ready

    def _pump(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except ConnectionError:
            # A reset ends the tunnel like a close does: clients drop connections that way.
            self._over = True
            return
        if data:
            self._relay(sock, data)
        else:
            self._end_of_stream(selector, sock)

    def _relay(self, source: socket.socket, data: bytes) -> None:
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        try:
            self._peer[source].sendall(data)
        except ConnectionError:
            self._over = True
            return
        up = source is self._client
        self._count(len(data) if up else 0, 0 if up else len(data))

    def _end_of_stream(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        selector.unregister(sock)
        peer = self._peer[sock]
        if isinstance(peer, ssl.SSLSocket) or peer not in selector.get_map():
            # TLS to the client has no half-close this proxy can express; end the tunnel.
            self._over = True
            return
        with contextlib.suppress(OSError):
            peer.shutdown(socket.SHUT_WR)


# --- the proxy ----------------------------------------------------------------------------------


class RecordingProxy:
    """Run a recording HTTP forward proxy on loopback for the duration of a test.

    The proxy tunnels ``CONNECT`` and forwards absolute-form ``http://`` requests (keep-alive
    towards the client, one ``Connection: close`` upstream connection per request). It only
    connects to loopback literals (``127.0.0.0/8``, ``::1``, ``localhost`` as ``127.0.0.1``)
    and to ``upstreams``; anything else is answered ``403`` and recorded with an error. Use it
    as a context manager or call :meth:`start` and :meth:`stop`; it runs once.

    Args:
        host: loopback address to listen on, ``"127.0.0.1"`` or ``"::1"``.
        port: port to listen on; ``0`` picks a free one.
        tls: serve the proxy itself over TLS, with a certificate for ``localhost``,
            ``127.0.0.1`` and ``::1`` from a CA made for this proxy (needs ``trustme``).
        upstreams: where to connect instead, keyed ``"host:port"`` (that port only) or
            ``"host"`` (any port), valued ``(ip or "localhost", port)``; names are never
            resolved.
        timeout: seconds allowed for upstream connects and reads and for TLS handshakes.

    Raises:
        ValueError: ``host`` is not a loopback address, or an upstream cannot be parsed.
        MissingExtraError: ``tls=True`` and ``trustme`` is not installed.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        upstreams: Mapping[str, tuple[str, int]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if host == "localhost" or _loopback_literal(host) is None:
            raise ValueError(f"host={host!r}: RecordingProxy listens on a loopback address only")
        self._host = host
        self._requested_port = port
        self._tls = tls
        self._timeout = timeout
        self._upstreams = _compile_upstreams(upstreams or {})
        self._faults = _Faults()
        self._cond = threading.Condition()
        self._entries: list[_Entry] = []
        self._tls_errors: list[str] = []
        # A deep backlog, so that 100 simultaneous connects all land.
        self._server = ConnectionServer(self._serve, name="RecordingProxy", backlog=1024)
        self._ca_dir: str | None = None
        self._server_ctx: ssl.SSLContext | None = None
        self._ca_pem: bytes | None = None
        if tls:
            self._server_ctx, self._ca_pem = _make_tls()

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> RecordingProxy:
        """Listen and start accepting connections.

        Returns:
            This proxy, so ``proxy = RecordingProxy().start()`` reads well.

        Raises:
            RuntimeError: the proxy was already started.
        """
        if self._server.used:
            raise RuntimeError("a RecordingProxy runs once; make a new one")
        self._server.start(self._host, self._requested_port)
        if self._ca_pem is not None:
            self._ca_dir = tempfile.mkdtemp(prefix="carto-proxy-ca-")
            with open(self.ca_file, "wb") as file:
                file.write(self._ca_pem)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and join every thread (within 1 s).

        Calling it again, or before :meth:`start`, does nothing.
        """
        self._server.stop()
        if self._ca_dir is not None:
            shutil.rmtree(self._ca_dir, ignore_errors=True)
            self._ca_dir = None

    # --- where it listens -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback address the proxy listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the proxy listens (or listened) on.

        Raises:
            RuntimeError: the proxy was never started.
        """
        if self._server.port is None:
            raise RuntimeError("RecordingProxy is not started; call start() first")
        return self._server.port

    @property
    def tls(self) -> bool:
        """Whether clients must speak TLS to the proxy."""
        return self._tls

    @property
    def scheme(self) -> str:
        """``"https"`` for a TLS proxy, else ``"http"``."""
        return "https" if self._tls else "http"

    @property
    def url(self) -> str:
        """The proxy URL to give clients: ``http://127.0.0.1:PORT``, ``https://localhost:PORT``.

        A TLS proxy on ``127.0.0.1`` is named ``localhost``, the name its certificate is for;
        IPv6 addresses are bracketed.
        """
        host = "localhost" if self._tls and self._host == "127.0.0.1" else self._host
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA that signed a TLS proxy's certificate.

        Raises:
            RuntimeError: the proxy does not use TLS.
        """
        if self._ca_pem is None:
            raise RuntimeError("ca_pem exists only for RecordingProxy(tls=True)")
        return self._ca_pem

    @property
    def ca_file(self) -> str:
        """A PEM file holding :attr:`ca_pem`, e.g. for ``NODE_EXTRA_CA_CERTS``; removed at stop.

        Raises:
            RuntimeError: the proxy does not use TLS or is not running.
        """
        if self._ca_dir is None:
            raise RuntimeError("ca_file exists only while a RecordingProxy(tls=True) runs")
        return os.path.join(self._ca_dir, "ca.pem")

    def __repr__(self) -> str:
        where = self.url if self._server.port is not None else "not started"
        with self._cond:
            count = len(self._entries)
        return f"<RecordingProxy {where} tls={self._tls} records={count}>"

    # --- what it saw ----------------------------------------------------------------------------

    @property
    def records(self) -> list[ProxyRecord]:
        """Every tunnel and request so far, in start order (snapshots)."""
        with self._cond:
            return self._snapshot()

    @property
    def tunnels(self) -> list[ProxyRecord]:
        """The ``CONNECT`` records, in start order."""
        return [record for record in self.records if record.method == "CONNECT"]

    @property
    def tls_errors(self) -> list[str]:
        """Failed TLS handshakes with clients, e.g. a client that refused the certificate."""
        with self._cond:
            return list(self._tls_errors)

    def seen(self, host_or_authority: str) -> list[ProxyRecord]:
        """Return the records for a host (any port, case-insensitive) or an exact ``host:port``.

        Args:
            host_or_authority: ``"api.example.com"``, ``"api.example.com:443"``, ``"[::1]:8443"``.
        """
        host, port = _split_authority(host_or_authority)
        return [
            record
            for record in self.records
            if record.host == host and (port is None or record.port == port)
        ]

    def clear(self) -> None:
        """Forget every record and TLS error so far (tunnels still open are no longer tracked)."""
        with self._cond:
            self._entries.clear()
            self._tls_errors.clear()

    def wait_for(
        self,
        condition: int | Callable[[list[ProxyRecord]], bool],
        *,
        timeout: float = 5.0,
    ) -> list[ProxyRecord]:
        """Wait until the records satisfy ``condition``; return them.

        Args:
            condition: a count ``n`` — at least ``n`` records have finished (``end`` is set) —
                or a predicate called with the records after every change.
            timeout: seconds to wait at most.

        Returns:
            All records, as they were when ``condition`` held.

        Raises:
            TimeoutError: ``condition`` did not hold within ``timeout``.
        """
        check = condition if callable(condition) else _finished(condition)
        with self._cond:
            if not self._cond.wait_for(lambda: check(self._snapshot()), timeout):
                raise TimeoutError(
                    f"RecordingProxy.wait_for({condition!r}) timed out after {timeout}s; "
                    f"records: {self._snapshot()!r}"
                )
            return self._snapshot()

    def wait_for_tls_errors(self, count: int = 1, *, timeout: float = 5.0) -> list[str]:
        """Wait until at least ``count`` TLS handshakes have failed; return their errors.

        Raises:
            TimeoutError: fewer failed within ``timeout``.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._tls_errors) >= count, timeout):
                raise TimeoutError(f"{len(self._tls_errors)} TLS errors after {timeout}s")
            return list(self._tls_errors)

    def _snapshot(self) -> list[ProxyRecord]:
        return [entry.snapshot() for entry in self._entries]

    # --- faults ---------------------------------------------------------------------------------

    def refuse(self, host: str, status: int = 403) -> None:
        """Answer ``status`` to every tunnel or request for ``host`` (or ``host:port``).

        Raises:
            ValueError: ``status`` is not a 4xx or 5xx status.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status={status}: refuse with a 4xx or 5xx status")
        self._faults.refuse(_split_authority(host), status)

    def fail_upstream(self, host: str) -> None:
        """Answer ``502`` for ``host`` (or ``host:port``), as if its upstream were down."""
        self._faults.fail(_split_authority(host))

    def close_mid_tunnel(self, host: str, after_bytes: int = 0) -> None:
        """Establish tunnels to ``host`` (or ``host:port``), then close them.

        Args:
            host: the host or ``host:port`` whose tunnels to cut.
            after_bytes: payload bytes relayed (both directions together) before closing.
        """
        if after_bytes < 0:
            raise ValueError(f"after_bytes={after_bytes}: give 0 or more")
        self._faults.cut(_split_authority(host), after_bytes)

    def add_latency(self, seconds: float, host: str | None = None) -> None:
        """Wait ``seconds`` before answering tunnels and requests for ``host`` (or for all).

        A delay set for a host wins over the one set for all hosts; ``stop()`` cuts it short.
        """
        if seconds < 0:
            raise ValueError(f"seconds={seconds}: give 0 or more")
        self._faults.latency(None if host is None else _split_authority(host), seconds)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    # --- bookkeeping ----------------------------------------------------------------------------

    def _open(
        self,
        method: str,
        address: _Address | None,
        client: tuple[str, int],
        *,
        raw: str = "",
        path: str | None = None,
    ) -> _Entry:
        """Start a record for ``address``, or for the ``raw`` target when it is unparseable."""
        host, port = address or ("", 0)
        entry = _Entry(
            method=method,
            authority=raw if address is None else _format_authority(host, port),
            host=host,
            port=port,
            path=path,
            client=client,
            start=time.monotonic(),
        )
        with self._cond:
            self._entries.append(entry)
            self._cond.notify_all()
        return entry

    def _set_status(self, entry: _Entry, status: int, error: str | None = None) -> None:
        with self._cond:
            entry.status = status
            entry.error = error or entry.error
            self._cond.notify_all()

    def _add_bytes(self, entry: _Entry, *, up: int, down: int) -> None:
        with self._cond:
            entry.bytes_up += up
            entry.bytes_down += down
            self._cond.notify_all()

    @contextlib.contextmanager
    def _recording(self, entry: _Entry) -> Iterator[_Entry]:
        """Set ``end`` (and ``error`` for a connection failure) however the handler leaves."""
        try:
            yield entry
        except (OSError, _ProtocolError) as exc:
            with self._cond:
                entry.error = entry.error or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with self._cond:
                entry.end = time.monotonic()
                self._cond.notify_all()

    # --- connections ----------------------------------------------------------------------------

    def _serve(self, conn: socket.socket, client: tuple[str, int]) -> None:
        sock = conn
        try:
            conn.setblocking(True)
            if self._server_ctx is not None:
                tls_sock = self._server_ctx.wrap_socket(
                    conn, server_side=True, do_handshake_on_connect=False
                )
                sock = tls_sock
                if not self._server.track(tls_sock, replacing=conn):
                    return
                if not self._handshake(tls_sock, client):
                    return
            self._serve_requests(sock, client)
        except (OSError, _ProtocolError):
            pass  # the client went away or spoke garbage; a record in flight has its error
        finally:
            self._server.untrack(sock)
            sock.close()

    def _handshake(self, sock: ssl.SSLSocket, client: tuple[str, int]) -> bool:
        # In the connection thread, so a slow or hostile client never stalls accept().
        sock.settimeout(self._timeout)
        try:
            sock.do_handshake()
        except OSError as exc:
            if not self._server.stopping.is_set():
                with self._cond:
                    self._tls_errors.append(f"{client[0]}:{client[1]}: {exc}")
                    self._cond.notify_all()
            return False
        sock.settimeout(None)
        return True

    def _serve_requests(self, sock: socket.socket, client: tuple[str, int]) -> None:
        reader = _Reader(sock)
        while not self._server.stopping.is_set():
            try:
                head = _read_head(reader)
                if head is None:
                    return
                method, target, _ = _request_line(head)
            except _ProtocolError as exc:
                sock.sendall(_error_response(400, str(exc), keep_alive=False))
                return
            if method == "CONNECT":
                self._tunnel(sock, reader, target, client)
                return
            if not self._forward(sock, reader, head, client):
                return

    def _decide(self, entry: _Entry) -> _Address | _Refusal:
        """Apply latency and faults, then the loopback-or-mapped rule; never resolve a name."""
        delay = self._faults.delay(entry.host, entry.port)
        if delay > 0 and self._server.stopping.wait(delay):
            # stop() cut the delay short: hang up rather than answer after all.
            raise ConnectionAbortedError("RecordingProxy stopped during add_latency")
        refusal = self._faults.refusal(entry.host, entry.port)
        if refusal is not None:
            return refusal
        mapped = self._upstreams.get((entry.host, entry.port))
        mapped = mapped or self._upstreams.get((entry.host, None))
        if mapped is not None:
            return mapped
        address = _loopback_literal(entry.host)
        if address is None:
            return _Refusal(status=403, error=f"{entry.authority} {_NOT_ALLOWED}")
        return address, entry.port

    def _connect(self, address: _Address) -> socket.socket:
        upstream = socket.create_connection(address, timeout=self._timeout)
        if not self._server.track(upstream):
            upstream.close()
            raise ConnectionAbortedError("RecordingProxy is stopping")
        return upstream

    def _refuse(self, sock: socket.socket, entry: _Entry, refusal: _Refusal, keep: bool) -> None:
        self._set_status(entry, refusal.status, refusal.error)
        sock.sendall(_error_response(refusal.status, refusal.error, keep_alive=keep))

    def _tunnel(
        self, sock: socket.socket, reader: _Reader, target: str, client: tuple[str, int]
    ) -> None:
        try:
            address = _split_connect(target)
        except ValueError as exc:
            with self._recording(self._open("CONNECT", None, client, raw=target)) as entry:
                self._refuse(sock, entry, _Refusal(status=400, error=str(exc)), keep=False)
            return
        with self._recording(self._open("CONNECT", address, client)) as entry:
            decision = self._decide(entry)
            if isinstance(decision, _Refusal):
                self._refuse(sock, entry, decision, keep=False)
                return
            try:
                upstream = self._connect(decision)
            except OSError as exc:
                error = f"cannot connect to {entry.authority} at {decision}: {exc}"
                self._refuse(sock, entry, _Refusal(status=502, error=error), keep=False)
                return
            try:
                self._splice(sock, reader, upstream, entry)
            finally:
                self._server.untrack(upstream)
                upstream.close()

    def _splice(
        self, sock: socket.socket, reader: _Reader, upstream: socket.socket, entry: _Entry
    ) -> None:
        budget = self._faults.cut_after(entry.host, entry.port)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self._set_status(entry, 200)
        splice = _Splice(
            sock,
            upstream,
            budget=budget,
            stopping=self._server.stopping,
            count=lambda up, down: self._add_bytes(entry, up=up, down=down),
        )
        # Bytes a client sent right behind its CONNECT were read ahead with the head.
        if splice.run(reader.take()):
            error = f"closed mid-tunnel by fault injection after {budget} bytes"
            self._set_status(entry, 200, error)

    def _forward(
        self, sock: socket.socket, reader: _Reader, head: _Head, client: tuple[str, int]
    ) -> bool:
        method, target, version = _request_line(head)
        keep = _keeps_alive(head, version)
        try:
            if _wants_continue(head):
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = _read_body(reader, head)
            host, port, path, host_header = _split_absolute(target)
        except (ValueError, _ProtocolError) as exc:
            # After a bad body the framing is lost: close; after a bad target, carry on.
            keep = keep and isinstance(exc, ValueError)
            with self._recording(self._open(method, None, client, raw=target)) as entry:
                self._refuse(sock, entry, _Refusal(status=400, error=str(exc)), keep)
            return keep
        with self._recording(self._open(method, (host, port), client, path=path)) as entry:
            request = _upstream_request(head, method, path, host_header, body)
            self._answer(sock, entry, request, len(body), keep=keep)
        return keep

    def _answer(
        self, sock: socket.socket, entry: _Entry, request: bytes, sent: int, *, keep: bool
    ) -> None:
        decision = self._decide(entry)
        if isinstance(decision, _Refusal):
            self._refuse(sock, entry, decision, keep)
            return
        try:
            head, status, reason, body = self._exchange(decision, request, entry.method)
        except (OSError, _ProtocolError) as exc:
            error = f"upstream {entry.authority} at {decision} failed: {exc}"
            self._refuse(sock, entry, _Refusal(status=502, error=error), keep)
            return
        self._add_bytes(entry, up=sent, down=0)
        self._set_status(entry, status)
        sock.sendall(_client_response(head, entry.method, status, reason, body, keep_alive=keep))
        self._add_bytes(entry, up=0, down=len(body))

    def _exchange(
        self, address: _Address, request: bytes, method: str
    ) -> tuple[_Head, int, str, bytes]:
        upstream = self._connect(address)
        try:
            upstream.sendall(request)
            return _read_response(_Reader(upstream), method)
        finally:
            self._server.untrack(upstream)
            upstream.close()


def _finished(count: int) -> Callable[[list[ProxyRecord]], bool]:
    return lambda records: sum(record.done for record in records) >= count


def _make_tls() -> tuple[ssl.SSLContext, bytes]:
    """Make a CA for this proxy and a server context with its certificate for loopback names."""
    try:
        import trustme
    except ImportError as exc:
        raise MissingExtraError("testing", "trustme") from exc
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
    return context, ca.cert_pem.bytes()
