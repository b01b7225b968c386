"""The bound on a proxy handshake that every HTTP adapter offers (``proxy_handshake_timeout=``).

A proxy that answers its CONNECT (or its TLS handshake) one byte at a time never lets a read
time out: each byte restarts the client's read or connect timeout. The adapters therefore
bound the whole handshake — TCP connect to the proxy, the TLS handshake with an ``https://``
proxy, CONNECT sent → tunnel ready — with one deadline, by default the client's connect
timeout.

Synchronous clients block in a socket call that only a timeout or the socket's shutdown can
end: :class:`Deadline` shuts the handshake's socket down when the deadline passes, from one
shared watchdog thread, so the blocked call returns at once and the adapter raises its
library's timeout error. Asynchronous adapters bound the handshake with the event loop's own
timeouts.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "check_handshake_timeout", "describe_timeout"]


def check_handshake_timeout(value: object, *, adapter: str) -> float | None:
    """*value* as seconds (``None``: the client's connect timeout), or a clear error.

    Raises:
        ValueError: *value* is not a positive, finite number of seconds.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{adapter}(proxy_handshake_timeout=...) must be a number of seconds or None, "
            f"not {type(value).__name__}"
        )
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"{adapter}(proxy_handshake_timeout={value!r}) must be a positive, finite number "
            "of seconds (or None: the client's connect timeout)"
        )
    return seconds


def describe_timeout(proxy: object, seconds: float) -> str:
    """The message of a handshake that ran out of time, naming the proxy."""
    return (
        f"the proxy handshake with {proxy} did not finish within {seconds:g} s "
        "(proxy_handshake_timeout)"
    )


class _Watchdog:
    """One daemon thread running the callbacks of expired deadlines, soonest first."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}  # armed and not cancelled
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        """Run *callback* in *seconds* unless :meth:`cancel` is called first."""
        with self._wake:
            ticket = next(self._count)
            self._live[ticket] = callback
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="carto_proxy handshake watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return ticket

    def cancel(self, ticket: int) -> None:
        with self._wake:
            self._live.pop(ticket, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # cancelled
                if not self._heap:
                    self._wake.wait()
                    continue
                due, ticket = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                callback = self._live.pop(ticket)
            with contextlib.suppress(OSError):  # the socket is closed already: nothing to stop
                callback()


_WATCHDOG = _Watchdog()


class Deadline:
    """A bound on one handshake: when *seconds* pass before :meth:`finish`, the socket given
    to :meth:`watch` is shut down, so that a call blocked on it returns at once.

    The socket is watched through a duplicate of its descriptor: it still refers to the
    connection once TLS has wrapped (and detached) the original object, and no descriptor
    number can be reused by another connection before :meth:`finish` closes it.
    :attr:`expired` then tells whether the deadline cut the handshake short, so that the
    adapter raises a timeout rather than whatever error the shut-down socket produced.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._sock: socket.socket | None = None
        self._ticket = _WATCHDOG.arm(seconds, self._expire)

    def watch(self, sock: socket.socket) -> None:
        """Shut *sock* down if the deadline passes (at once if it has)."""
        with self._lock:
            if self._done or self._sock is not None:
                return
            self._sock = sock.dup()
            if self.expired:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> bool:
        """End the bound (the handshake is over); return whether it had expired."""
        with self._lock:
            if not self._done:
                self._done = True
                _WATCHDOG.cancel(self._ticket)
                if self._sock is not None:
                    self._sock.close()
            return self.expired
