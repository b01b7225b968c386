"""The proxy's end of a client connection, on h11: each request's head and body, its answer.

A framing error ends the connection. Two things h11 refuses, but clients send and proxies
such as Squid take, are taken: a request without Host (CONNECT often has none) and empty
lines before a request (RFC 9112 §2.2).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterable, Iterator

from carto_proxy.testing._http11 import (
    CHUNK,
    MAX_HEAD,
    FramingError,
    Headers,
    RequestHead,
    h11,
    phrase,
    request_head,
)

__all__ = ["ClientConnection"]

# How long, and how much, to read from a client whose connection closes after an error.
_LINGER_SECONDS = 0.5
_LINGER_BYTES = 1024 * 1024


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
                return request_head(event)

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
        self.respond(status, phrase(status), headers, [body])

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


def _server() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
