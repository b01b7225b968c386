"""HTTP/1.1 framing for RecordingProxy, on h11: the client's requests and each upstream exchange.

h11 parses and frames every message. This module adds what a proxy needs around it: blocking
socket I/O, limits, the hop-by-hop rules of forwarding, bodies streamed (or spooled, when only
their end tells their length), and one rule for doubt: a request whose framing is in question
ends its connection, so that no part of it can be run as another request (request smuggling).
That covers what h11 refuses and a request that carries both ``Transfer-Encoding`` and
``Content-Length``, which RFC 9112 §6.3 says ought to be handled as an error.
"""

from __future__ import annotations

import contextlib
import functools
import http
import socket
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from carto_proxy.exceptions import MissingExtraError

try:
    import h11
except ImportError as error:
    raise MissingExtraError("testing", "h11") from error

__all__ = [
    "CHUNK",
    "ClientConnection",
    "FramingError",
    "Headers",
    "RequestHead",
    "ResponseHead",
    "UpstreamConnection",
    "UpstreamError",
    "forwardable",
    "sized",
]

CHUNK = 65536
# A whole request or response head, as Squid's default request_header_max_size.
MAX_HEAD = 65536
MAX_FIELDS = 100
# A body whose length only its end tells is held in memory up to this, then in a temporary file.
SPOOL_BYTES = 1024 * 1024
# How long, and how much, to read from a client whose connection closes after an error.
_LINGER_SECONDS = 0.5
_LINGER_BYTES = 1024 * 1024

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        # The proxy answers 100-continue itself.
        b"expect",
    }
)

Headers = list[tuple[bytes, bytes]]
"""Header fields in order, names as the peer spelt them."""


class FramingError(Exception):
    """The client broke HTTP/1.1 framing: its connection cannot carry another request."""


class UpstreamError(Exception):
    """The upstream's answer was not an HTTP/1.1 response this proxy can relay."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request's start line and header fields.

    Attributes:
        method: the method, as sent.
        target: the request target, as sent.
        headers: the header fields.
        keep_alive: whether the client allows another request on this connection.
        length: the body's ``Content-Length`` (``0`` without one); ``None`` when chunked.
    """

    method: str
    target: str
    headers: Headers
    keep_alive: bool
    length: int | None


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final response's status line and header fields.

    Attributes:
        status: the status code.
        reason: the reason phrase, as sent.
        headers: the header fields.
        content_length: the ``Content-Length`` field; ``None`` without one.
        chunked: whether the body is chunked (which wins over ``Content-Length``).
    """

    status: int
    reason: bytes
    headers: Headers
    content_length: int | None
    chunked: bool


def forwardable(headers: Headers) -> Headers:
    """Return the end-to-end fields: no hop-by-hop ones (RFC 9110 §7.6.1), framing or Host."""
    drop = _HOP_BY_HOP | _tokens(headers, b"connection") | {b"content-length", b"host"}
    return [(name, value) for name, value in headers if name.lower() not in drop]


@contextlib.contextmanager
def sized(chunks: Iterable[bytes], length: int | None) -> Iterator[tuple[int, Iterable[bytes]]]:
    """Give a body its length: the one declared, or else by spooling the whole body first.

    A spooled body stays in memory up to 1 MiB and goes to a temporary file beyond, so a body
    of any size costs at most that much memory.

    Yields:
        The length, and the body's chunks.
    """
    if length is not None:
        yield length, chunks
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        for chunk in chunks:
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        yield size, iter(functools.partial(spool.read, CHUNK), b"")


class ClientConnection:
    """The proxy's end of a client connection: each request's head and body, then its answer."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._h11 = _server()
        # What this request's head was read from, kept until h11 has parsed it.
        self._fed: bytearray | None = bytearray()

    @property
    def can_answer(self) -> bool:
        """Whether no response to the current request has begun yet."""
        return self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def next_request(self) -> RequestHead | None:
        """Return the next request's head; ``None`` when the client closed between requests.

        Raises:
            FramingError: the head is not one this proxy accepts.
        """
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                self._receive()
            elif isinstance(event, h11.ConnectionClosed):
                return None
            else:
                assert isinstance(event, h11.Request)
                # h11 bounds a head it is still waiting for; this bounds a complete one.
                if (
                    self._fed is not None
                    and len(self._fed) - len(self._h11.trailing_data[0]) > MAX_HEAD
                ):
                    raise FramingError(f"request head over {MAX_HEAD // 1024} KiB")
                self._fed = None
                return _request_head(event)

    def body(self) -> Iterator[bytes]:
        """Yield the current request's body as it arrives (after ``100 Continue`` if awaited).

        Raises:
            FramingError: the body is cut short or badly framed.
        """
        if self._h11.client_is_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, reason=b"Continue", headers=[]))
        while self._h11.their_state is h11.SEND_BODY:  # until EndOfMessage (trailers dropped)
            event = self._next_event()
            if event is h11.NEED_DATA:
                self._receive()
            elif isinstance(event, h11.Data):
                yield bytes(event.data)

    def drain(self) -> None:
        """Read and forget the rest of the current request's body."""
        for _ in self.body():
            pass

    def respond(
        self, status: int, reason: bytes, headers: Headers, chunks: Iterable[bytes]
    ) -> None:
        """Send a response: the head, then the body's chunks as they come."""
        # Written in as few sends as possible: a client that reads the answer in one recv()
        # and hangs up must not make the rest of it fail.
        out = bytearray(
            self._h11.send(h11.Response(status_code=status, reason=reason, headers=headers)) or b""
        )
        for chunk in chunks:
            out += self._h11.send(h11.Data(data=chunk)) or b""
            if len(out) >= CHUNK:
                self._sock.sendall(out)
                out.clear()
        out += self._h11.send(h11.EndOfMessage()) or b""
        self._sock.sendall(out)

    def error(self, status: int, message: str, *, keep_alive: bool) -> None:
        """Answer ``status`` with ``message`` as a plain-text body."""
        body = f"{message}\n".encode()
        headers = [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", b"%d" % len(body)),
            (b"Connection", b"keep-alive" if keep_alive else b"close"),
        ]
        self.respond(status, _phrase(status), headers, [body])

    def open_tunnel(self) -> bytes:
        """Answer ``200`` to the CONNECT just read; return the bytes the client sent behind it."""
        self._send(h11.Response(status_code=200, reason=b"Connection established", headers=[]))
        return bytes(self._h11.trailing_data[0])

    def close_gently(self) -> None:
        """Let the client read the last answer before its connection closes (RFC 9112 §9.6).

        Closing with unread input resets a TCP connection, and the reset can destroy an answer
        the client has not read yet; so half-close (plain TCP), then read and forget what the
        client still sends, for half a second or 1 MiB at most.
        """
        with contextlib.suppress(OSError):
            if not isinstance(self._sock, ssl.SSLSocket):
                self._sock.shutdown(socket.SHUT_WR)
            deadline, left = time.monotonic() + _LINGER_SECONDS, _LINGER_BYTES
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self._sock.settimeout(remaining)
                data = self._sock.recv(CHUNK)
                if not data:
                    return
                left -= len(data)

    def next_cycle(self) -> bool:
        """Get ready for the next request; ``False`` when the connection must close instead."""
        if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
            return False
        unread, closed = self._h11.trailing_data
        self._h11, self._fed = _server(), bytearray()
        self._feed(bytes(unread))
        if closed:
            self._h11.receive_data(b"")
        return True

    def _receive(self) -> None:
        data = self._sock.recv(CHUNK)
        if data:
            self._feed(data)
        else:
            self._h11.receive_data(b"")

    def _feed(self, data: bytes) -> None:
        if self._h11.their_state is h11.IDLE and not self._h11.trailing_data[0]:
            data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore empty lines before a request
        if data:
            if self._fed is not None:
                self._fed += data
            self._h11.receive_data(data)

    def _send(self, event: h11.Event) -> None:
        self._sock.sendall(self._h11.send(event) or b"")

    def _next_event(self) -> object:
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            retried = self._with_empty_host()
            if retried is None:
                raise FramingError(str(exc)) from exc
            return retried

    def _with_empty_host(self) -> h11.Request | None:
        """Parse again a head h11 refused, with an empty Host field; ``None`` if still refused.

        HTTP/1.1 requires Host (RFC 9112 §3.2) and h11 enforces it, but clients send CONNECT
        without one and proxies such as Squid take it. The empty field is never forwarded:
        the proxy sets Host from the target. Any other fault is refused again.
        """
        if self._fed is None:
            return None  # the head was parsed: h11 refused a body
        unread, closed = self._h11.trailing_data
        head = bytes(self._fed[: len(self._fed) - len(unread)])
        if not head.endswith((b"\n\n", b"\n\r\n")):
            return None  # h11 refused it before the end of the head
        blank = 2 if head.endswith(b"\r\n") else 1
        retry = _server()
        retry.receive_data(head[:-blank] + b"Host: \r\n\r\n" + bytes(unread))
        if closed:
            retry.receive_data(b"")
        try:
            event = retry.next_event()
        except h11.RemoteProtocolError:
            return None
        self._h11 = retry
        return event if isinstance(event, h11.Request) else None


class UpstreamConnection:
    """The proxy's end of an upstream connection, carrying one request (``Connection: close``).

    Raises (each method):
        UpstreamError: the upstream connection failed or timed out, or its answer is not a
            response this proxy relays. (Errors of the request body's chunks pass through.)
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def send_request(self, method: str, path: str, headers: Headers, body: Iterable[bytes]) -> None:
        """Send the request head, then the body's chunks as they come."""
        self._send(h11.Request(method=method, target=path, headers=headers))
        for chunk in body:
            self._send(h11.Data(data=chunk))
        self._send(h11.EndOfMessage())

    def response(self) -> ResponseHead:
        """Return the final response's head, skipping interim (1xx) responses."""
        while True:
            event = self._next_event()
            if isinstance(event, h11.Response):
                return _response_head(event)
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                raise UpstreamError("upstream switched protocols; RecordingProxy does not upgrade")

    def body(self) -> Iterator[bytes]:
        """Yield the response's body as it arrives."""
        while not isinstance(event := self._next_event(), h11.EndOfMessage):
            if isinstance(event, h11.Data):
                yield bytes(event.data)

    def _next_event(self) -> object:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise UpstreamError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self._sock.recv(CHUNK)
            except OSError as exc:
                raise UpstreamError(str(exc)) from exc
            if not data and self._h11.their_state is h11.SEND_RESPONSE:
                raise UpstreamError("upstream closed the connection without a response")
            self._h11.receive_data(data)

    def _send(self, event: h11.Event) -> None:
        try:
            self._sock.sendall(self._h11.send(event) or b"")
        except OSError as exc:
            raise UpstreamError(str(exc)) from exc


def _server() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


def _request_head(event: h11.Request) -> RequestHead:
    headers = _checked(list(event.headers.raw_items()), FramingError)
    tokens = _tokens(headers, b"connection") | _tokens(headers, b"proxy-connection")
    return RequestHead(
        method=event.method.decode("ascii"),
        target=event.target.decode("ascii"),
        headers=headers,
        keep_alive=event.http_version == b"1.1" and b"close" not in tokens,
        length=None if _field(headers, b"transfer-encoding") else int(_field(headers) or 0),
    )


def _response_head(event: h11.Response) -> ResponseHead:
    headers = _checked(list(event.headers.raw_items()), UpstreamError)
    length = _field(headers)
    return ResponseHead(
        status=event.status_code,
        reason=bytes(event.reason),
        headers=headers,
        content_length=None if length is None else int(length),
        chunked=_field(headers, b"transfer-encoding") is not None,
    )


def _checked(headers: Headers, error: type[Exception]) -> Headers:
    if len(headers) > MAX_FIELDS:
        raise error(f"more than {MAX_FIELDS} header fields")
    if _field(headers) is not None and _field(headers, b"transfer-encoding") is not None:
        raise error("both Transfer-Encoding and Content-Length: the framing is ambiguous")
    return headers


def _field(headers: Headers, name: bytes = b"content-length") -> bytes | None:
    # h11 has already merged repeated Content-Length fields and refused repeated
    # Transfer-Encoding ones, so the first is the only one.
    return next((value for key, value in headers if key.lower() == name), None)


def _tokens(headers: Headers, name: bytes) -> set[bytes]:
    """Return the comma-separated, lowercased tokens of every ``name`` field."""
    return {
        token.strip().lower()
        for key, value in headers
        if key.lower() == name
        for token in value.split(b",")
        if token.strip()
    }


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
