"""The tunnel relay of RecordingProxy: bytes both ways between a client and an upstream.

One thread relays both directions without ever blocking on a send: a side that stops reading
holds back only the direction that feeds it. (A blocking send would deadlock as soon as both
directions carry more than the sockets buffer: the relay waits on an upstream that waits on
the relay.) Each direction holds at most one chunk in flight.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable

__all__ = ["Splice"]

_CHUNK = 65536
# A TLS socket in non-blocking mode raises these where a plain one would block.
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Pipe:
    """One direction of the tunnel: bytes from ``source`` on their way to ``sink``."""

    __slots__ = ("ended", "pending", "sink", "source", "up")

    def __init__(self, source: socket.socket, sink: socket.socket, *, up: bool) -> None:
        self.source = source
        self.sink = sink
        self.up = up
        self.pending = b""
        self.ended = False  # the source sent its last byte


class Splice:
    """Relay bytes both ways between a client and an upstream, in the calling thread.

    Args:
        client: the client's socket (plain or TLS).
        upstream: the upstream's socket.
        budget: payload bytes (both directions together) to relay before cutting the tunnel;
            ``None`` for no limit.
        stopping: set when the proxy stops; the relay then ends (the proxy also shuts the
            sockets down, which wakes it).
        count: called with ``(up, down)`` byte counts after each relayed chunk.
    """

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
        self._up = _Pipe(client, upstream, up=True)
        self._down = _Pipe(upstream, client, up=False)
        self._left = budget
        self._stopping = stopping
        self._count = count
        self._over = False

    def run(self, early: bytes) -> bool:
        """Relay ``early`` (client bytes read ahead), then until both sides are done.

        Returns:
            Whether the byte budget cut the tunnel.
        """
        for sock in (self._up.source, self._down.source):
            sock.setblocking(False)
        self._up.pending = self._take(early)
        with selectors.DefaultSelector() as selector:
            watched = None
            while self._running():
                if (state := self._state()) != watched:
                    self._register(selector)
                    watched = state
                for sock, events in self._ready(selector):
                    if events & selectors.EVENT_WRITE:
                        self._push(self._into(sock))
                    if events & selectors.EVENT_READ and self._running():
                        self._pull(self._out_of(sock))
        return self._left == 0

    def _running(self) -> bool:
        if self._over or self._stopping.is_set():
            return False
        busy = self._up.pending or self._down.pending
        return bool(busy) or (self._left != 0 and not (self._up.ended and self._down.ended))

    def _state(self) -> tuple[bool, ...]:
        """What the watched events depend on."""
        up, down = self._up, self._down
        return (bool(up.pending), up.ended, bool(down.pending), down.ended, self._left == 0)

    def _out_of(self, sock: socket.socket) -> _Pipe:
        return self._up if sock is self._up.source else self._down

    def _into(self, sock: socket.socket) -> _Pipe:
        return self._up if sock is self._up.sink else self._down

    def _wants_read(self, pipe: _Pipe) -> bool:
        return not (pipe.ended or pipe.pending) and self._left != 0

    def _register(self, selector: selectors.BaseSelector) -> None:
        """Watch a socket for reading while its pipe has room, for writing while it waits."""
        for sock in (self._up.source, self._down.source):
            events = (selectors.EVENT_READ if self._wants_read(self._out_of(sock)) else 0) | (
                selectors.EVENT_WRITE if self._into(sock).pending else 0
            )
            registered = selector.get_map().get(sock)
            if registered is not None and events == 0:
                selector.unregister(sock)
            elif registered is None and events:
                selector.register(sock, events)
            elif registered is not None and registered.events != events:
                selector.modify(sock, events)

    def _ready(self, selector: selectors.BaseSelector) -> list[tuple[socket.socket, int]]:
        client = self._client
        # An SSLSocket can hold decrypted bytes that select() cannot see.
        buffered = isinstance(client, ssl.SSLSocket) and client.pending() > 0
        buffered = buffered and self._wants_read(self._up)
        ready = {key.fileobj: events for key, events in selector.select(0 if buffered else None)}
        if buffered:
            ready[client] = ready.get(client, 0) | selectors.EVENT_READ
        return [(sock, events) for sock, events in ready.items() if isinstance(sock, socket.socket)]

    def _pull(self, pipe: _Pipe) -> None:
        if not self._wants_read(pipe):
            return  # its last chunk is still on its way, or it has ended
        try:
            data = pipe.source.recv(_CHUNK)
        except _WOULD_BLOCK:
            return
        except ConnectionError:
            # A reset ends the tunnel like a close does: clients drop connections that way.
            self._over = True
            return
        if data:
            pipe.pending = self._take(data)
            self._push(pipe)
        else:
            pipe.ended = True
            self._end_of_stream(pipe)

    def _push(self, pipe: _Pipe) -> None:
        if not pipe.pending:
            return
        try:
            sent = pipe.sink.send(pipe.pending)
        except _WOULD_BLOCK:
            return
        except ConnectionError:
            self._over = True
            return
        pipe.pending = pipe.pending[sent:]
        self._count(sent if pipe.up else 0, 0 if pipe.up else sent)
        if pipe.ended and not pipe.pending:
            self._end_of_stream(pipe)

    def _take(self, data: bytes) -> bytes:
        """Spend the byte budget on ``data``; return what may be relayed."""
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        return data

    def _end_of_stream(self, pipe: _Pipe) -> None:
        """Pass on a source's end once its last bytes are written."""
        if pipe.pending:
            return
        other = self._out_of(pipe.sink)
        if isinstance(pipe.sink, ssl.SSLSocket) or (other.ended and not other.pending):
            # Both sides are done; or the client speaks TLS, which has no half-close this
            # proxy can express: end the tunnel.
            self._over = True
            return
        with contextlib.suppress(OSError):
            pipe.sink.shutdown(socket.SHUT_WR)
