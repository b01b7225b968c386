"""What RecordingProxy does with one client connection: tunnel, forward or refuse each request.

Each request is recorded from its head to its end. Where it may go is decided without
resolving a name: injected latency and faults first, then the mapped upstreams and loopback
literals; anything else is refused ``403``. Forwarded requests get one upstream connection
each (``Connection: close``), their bodies streamed both ways.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from carto_proxy.testing._faults import Faults, Refusal
from carto_proxy.testing._http11 import (
    FramingError,
    Headers,
    RequestHead,
    UpstreamError,
    forwardable,
    sized,
)
from carto_proxy.testing._http11_clients import ClientConnection
from carto_proxy.testing._http11_upstream import UpstreamConnection
from carto_proxy.testing._proxy_records import LiveRecord, RecordBook
from carto_proxy.testing._relay import Splice
from carto_proxy.testing._serving import ConnectionServer
from carto_proxy.testing._upstreams import Address, Upstreams, key_of

__all__ = ["Proxying"]

_NOT_ALLOWED = "is not a loopback address or mapped upstream; RecordingProxy connects nowhere else"
# Methods whose requests carry a Content-Length upstream even when their body is empty.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

_Peer = tuple[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxying:
    """The proxy's behaviour, shared by its connection threads.

    Attributes:
        server: the connection server (stopping, socket tracking, upstream connects).
        book: where tunnels, requests and TLS errors are recorded.
        faults: the faults to inject.
        upstreams: where the proxy may connect.
        timeout: seconds for upstream connects and reads and for TLS handshakes.
        tls: the context clients' connections are wrapped in; ``None`` for a plain proxy.
    """

    server: ConnectionServer
    book: RecordBook
    faults: Faults
    upstreams: Upstreams
    timeout: float
    tls: ssl.SSLContext | None

    def serve(self, conn: socket.socket, peer: _Peer) -> None:
        """Serve one client connection until it closes; close it."""
        sock = conn
        try:
            conn.setblocking(True)
            if self.tls is not None:
                tls_sock = self.tls.wrap_socket(
                    conn, server_side=True, do_handshake_on_connect=False
                )
                sock = tls_sock
                if not self._handshake(tls_sock, conn, peer):
                    return
            self._serve_requests(sock, peer)
        except (OSError, FramingError):
            pass  # the client went away or broke framing; a record in flight has its error
        finally:
            self.server.untrack(sock)
            sock.close()

    def _handshake(self, sock: ssl.SSLSocket, conn: socket.socket, peer: _Peer) -> bool:
        """Track ``sock`` in place of ``conn``, then run its handshake; ``False`` if it fails."""
        if not self.server.track(sock, replacing=conn):
            return False
        # In the connection thread, so a slow or hostile client never stalls accept().
        sock.settimeout(self.timeout)
        try:
            sock.do_handshake()
        except OSError as exc:
            if not self.server.stopping.is_set():
                self.book.add_tls_error(f"{peer[0]}:{peer[1]}: {exc}")
            return False
        sock.settimeout(None)
        return True

    def _serve_requests(self, sock: socket.socket, peer: _Peer) -> None:
        client = ClientConnection(sock)
        while not self.server.stopping.is_set():
            try:
                request = client.next_request()
                if request is None:
                    return
                if request.method == "CONNECT":
                    self._tunnel(client, sock, request, peer)
                    return
                if not self._forward(client, request, peer) or not client.next_cycle():
                    return
            except FramingError as exc:
                # The framing is lost: whatever follows could be smuggled, so answer and close.
                if client.can_answer:
                    client.error(400, str(exc), keep_alive=False)
                client.close_gently()
                return

    @contextlib.contextmanager
    def _recording(
        self,
        client: ClientConnection,
        method: str,
        address: Address | None,
        peer: _Peer,
        *,
        raw: str = "",
        path: str | None = None,
    ) -> Iterator[LiveRecord]:
        """Record one request from its head to its end; a framing error in it is a 400."""
        with self.book.recording(self.book.open(method, address, peer, raw=raw, path=path)) as live:
            try:
                yield live
            except FramingError as exc:
                self._refuse(client, live, Refusal(status=400, error=str(exc)), keep=False)
                raise

    def _decide(self, record: LiveRecord) -> Address | Refusal:
        """Apply latency and faults, then the loopback-or-mapped rule; never resolve a name."""
        delay = self.faults.delay(record.now.host, record.now.port)
        if delay > 0 and self.server.stopping.wait(delay):
            # stop() cut the delay short: hang up rather than answer after all.
            raise ConnectionAbortedError("RecordingProxy stopped during add_latency")
        refusal = self.faults.refusal(record.now.host, record.now.port)
        if refusal is not None:
            return refusal
        address = self.upstreams.address_for(record.now.host, record.now.port)
        if address is None:
            return Refusal(status=403, error=f"{record.now.authority} {_NOT_ALLOWED}")
        return address

    def _refuse(
        self, client: ClientConnection, record: LiveRecord, refusal: Refusal, keep: bool
    ) -> bool:
        """Answer ``refusal`` unless a response has begun; return whether to carry on."""
        if not client.can_answer:
            self.book.set_error(record, refusal.error)
            return False
        self.book.set_status(record, refusal.status, refusal.error)
        client.error(refusal.status, refusal.error, keep_alive=keep)
        return keep

    # --- tunnels --------------------------------------------------------------------------------

    def _tunnel(
        self, client: ClientConnection, sock: socket.socket, request: RequestHead, peer: _Peer
    ) -> None:
        try:
            address = _connect_target(request.target)
        except ValueError as exc:
            with self._recording(client, "CONNECT", None, peer, raw=request.target) as record:
                self._refuse(client, record, Refusal(status=400, error=str(exc)), keep=False)
            return
        with self._recording(client, "CONNECT", address, peer) as record:
            client.drain()
            decision = self._decide(record)
            if isinstance(decision, Refusal):
                self._refuse(client, record, decision, keep=False)
                return
            try:
                upstream = self.server.connect(decision, self.timeout)
            except OSError as exc:
                error = f"cannot connect to {record.now.authority} at {decision}: {exc}"
                self._refuse(client, record, Refusal(status=502, error=error), keep=False)
                return
            try:
                self._splice(client, sock, upstream, record)
            finally:
                self.server.untrack(upstream)
                upstream.close()

    def _splice(
        self,
        client: ClientConnection,
        sock: socket.socket,
        upstream: socket.socket,
        record: LiveRecord,
    ) -> None:
        budget = self.faults.cut_after(record.now.host, record.now.port)
        early = client.open_tunnel()
        self.book.set_status(record, 200)
        splice = Splice(
            sock,
            upstream,
            budget=budget,
            stopping=self.server.stopping,
            count=lambda up, down: self.book.add_bytes(record, up=up, down=down),
        )
        if splice.run(early):
            error = f"closed mid-tunnel by fault injection after {budget} bytes"
            self.book.set_status(record, 200, error)

    # --- forwarding -----------------------------------------------------------------------------

    def _forward(self, client: ClientConnection, request: RequestHead, peer: _Peer) -> bool:
        """Forward one absolute-form request; return whether the connection carries on."""
        keep = request.keep_alive
        try:
            host, port, path, host_header = _split_absolute(request.target)
        except ValueError as exc:
            with self._recording(client, request.method, None, peer, raw=request.target) as record:
                client.drain()  # the framing holds: the connection can carry on
                return self._refuse(client, record, Refusal(status=400, error=str(exc)), keep)
        with self._recording(client, request.method, (host, port), peer, path=path) as record:
            decision = self._decide(record)
            if isinstance(decision, Refusal):
                client.drain()
                return self._refuse(client, record, decision, keep)
            try:
                self._exchange(client, request, record, (decision, host_header), keep)
            except UpstreamError as exc:
                client.drain()
                error = f"upstream {record.now.authority} at {decision} failed: {exc}"
                return self._refuse(client, record, Refusal(status=502, error=error), keep)
            return keep

    def _exchange(
        self,
        client: ClientConnection,
        request: RequestHead,
        record: LiveRecord,
        upstream_at: tuple[Address, str],
        keep: bool,
    ) -> None:
        """Send the request to ``(address, Host)``, its body streamed; relay the response."""
        address, host_header = upstream_at
        assert record.now.path is not None
        with sized(client.body(), request.length) as (length, body):
            try:
                sock = self.server.connect(address, self.timeout)
            except OSError as exc:
                raise UpstreamError(str(exc)) from exc
            try:
                upstream = UpstreamConnection(sock)
                headers = _upstream_headers(request, host_header, length)
                body = self._counted(record, body, up=True)
                upstream.send_request(request.method, record.now.path, headers, body)
                self._relay_response(client, record, upstream, keep)
            finally:
                self.server.untrack(sock)
                sock.close()

    def _relay_response(
        self, client: ClientConnection, record: LiveRecord, upstream: UpstreamConnection, keep: bool
    ) -> None:
        response = upstream.response()
        empty = record.now.method == "HEAD" or response.status in (204, 304)
        length = 0 if empty else None if response.chunked else response.content_length
        with sized(() if empty else upstream.body(), length) as (size, chunks):
            headers = forwardable(response.headers)
            # A HEAD answer declares the length a GET would have had.
            declared = response.content_length if record.now.method == "HEAD" else size
            if declared is not None and response.status not in (204, 304):
                headers.append((b"Content-Length", b"%d" % declared))
            headers.append((b"Connection", b"keep-alive" if keep else b"close"))
            self.book.set_status(record, response.status)
            chunks = self._counted(record, chunks, up=False)
            client.respond(response.status, response.reason, headers, chunks)

    def _counted(self, record: LiveRecord, chunks: Iterable[bytes], *, up: bool) -> Iterator[bytes]:
        """Yield ``chunks``, counting each one relayed (``up``: client → upstream)."""
        for chunk in chunks:
            yield chunk
            self.book.add_bytes(record, up=len(chunk) if up else 0, down=0 if up else len(chunk))


def _upstream_headers(request: RequestHead, host_header: str, length: int) -> Headers:
    # RFC 9112 §3.2.2: a proxy replaces Host with the authority of the absolute-form target.
    headers = [(b"Host", host_header.encode("ascii")), *forwardable(request.headers)]
    if length or request.method in _BODY_METHODS:
        headers.append((b"Content-Length", b"%d" % length))
    # One upstream connection per request keeps the framing of the response simple.
    headers.append((b"Connection", b"close"))
    return headers


def _connect_target(target: str) -> Address:
    host, port = key_of(target)
    if port is None:
        raise ValueError(f"CONNECT needs host:port, got {target[:200]!r}")
    return host, port


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
