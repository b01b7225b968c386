"""The proxy's end of an upstream connection, on h11: one request, its response."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

from carto_proxy.testing._http11 import (
    CHUNK,
    MAX_HEAD,
    Headers,
    ResponseHead,
    UpstreamError,
    h11,
    response_head,
)

__all__ = ["UpstreamConnection"]


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
                return response_head(event)
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
