"""The tunnel relay of RecordingProxy: bytes both ways between a client and an upstream."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable

__all__ = ["Splice"]

_CHUNK = 65536


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
        self._peer = {client: upstream, upstream: client}
        self._left = budget
        self._stopping = stopping
        self._count = count
        self._over = False

    def run(self, early: bytes) -> bool:
        """Relay ``early`` (client bytes read ahead), then until both sides are done.

        Returns:
            Whether the byte budget cut the tunnel.
        """
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
