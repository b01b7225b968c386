"""The TCP server under RecordingProxy and LocalOrigin: one thread per connection, fast stop.

Both must stop within about a second however their clients behave, so every socket is
tracked, the connections it accepts and those it opens upstream: stopping shuts each one
down, which wakes a thread blocked in ``recv``, ``select`` or a TLS handshake, wakes a connect
in progress, then joins the threads within what is left of the budget.

Both must also outlive a process that runs out of resources: a connection that gets no thread
is refused and the server keeps accepting; when ``accept`` fails for want of descriptors or
memory, the connection waits in the backlog and the server backs off (as Go's ``net/http``
does) instead of spinning on a listener that stays readable.

Their own connections are not the program's: an egress audit in the same process does not
judge what their connection threads connect to (a proxy's upstreams).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from carto_proxy._unaudited import unaudited

__all__ = ["ConnectionServer", "Serve"]

# stop() must return within 1 s; keep a margin for closing sockets after the joins.
_STOP_BUDGET = 0.8
# accept() failed for want of descriptors or memory: wait this long, doubling up to the cap.
_BACKOFF = 0.005
_MAX_BACKOFF = 0.25
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

Serve = Callable[[socket.socket, tuple[str, int]], None]


class ConnectionServer:
    """Accept connections on a loopback address and run ``serve(conn, client)`` for each.

    ``serve`` runs in the connection's own thread and closes the socket it was given. A socket
    it wraps the connection in (TLS) must be tracked with :meth:`track`, so that stopping can
    wake it too.

    Args:
        serve: what to do with one connection.
        name: the prefix of the threads' names.
        backlog: how many connections may wait to be accepted.
    """

    def __init__(self, serve: Serve, *, name: str, backlog: int) -> None:
        self._serve = serve
        self._name = name
        self._backlog = backlog
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self.stopping = threading.Event()
        """Set once :meth:`stop` begins: long waits in connection threads should watch it."""
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._accept_thread: threading.Thread | None = None
        self.port: int | None = None
        """The port it listens (or listened) on; ``None`` before :meth:`start`."""

    @property
    def used(self) -> bool:
        """Whether it was ever started: a server runs once."""
        return self._listener is not None or self.stopping.is_set()

    def start(self, host: str, port: int = 0) -> None:
        """Listen on ``host:port`` (``0``: a free port) and start accepting; all or nothing.

        Raises:
            OSError: it cannot listen there, or the process is out of descriptors.
            RuntimeError: the accept thread cannot start.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with contextlib.ExitStack() as undo:
            listener = undo.enter_context(socket.socket(family, socket.SOCK_STREAM))
            listener.bind((host, port))
            listener.listen(self._backlog)
            listener.setblocking(False)
            wake = socket.socketpair()
            undo.enter_context(wake[0])
            undo.enter_context(wake[1])
            # Made here, not in the thread: every descriptor the server needs exists once
            # start() returns, whatever the process runs out of later.
            selector = undo.enter_context(selectors.DefaultSelector())
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            bound = int(listener.getsockname()[1])
            accept_thread = threading.Thread(
                target=self._accept_loop,
                args=(listener, selector),
                name=f"{self._name}-accept:{bound}",
                daemon=True,
            )
            self.port = bound  # the connection threads are named after it
            try:
                accept_thread.start()
            except BaseException:
                self.port = None
                raise
            undo.pop_all()
        self._listener, self._wake, self._accept_thread = listener, wake, accept_thread

    def stop(self) -> None:
        """Close the listener and every connection, and join every thread; idempotent."""
        if self._listener is None or self.stopping.is_set():
            return
        deadline = time.monotonic() + _STOP_BUDGET
        self.stopping.set()
        assert self._wake is not None
        assert self._accept_thread is not None
        try:
            # The byte is never read: the wake socket stays readable for every waiter.
            self._wake[1].send(b"\0")
            self._accept_thread.join(_STOP_BUDGET)
            with self._lock:
                sockets, threads = list(self._sockets), list(self._threads)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    # The plain shutdown wakes a blocked recv/select/handshake in any thread;
                    # SSLSocket.shutdown would also drop its TLS state under that thread.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            for thread in threads:
                if thread.ident is not None:  # one being started as stop() began may not be
                    thread.join(max(0.0, deadline - time.monotonic()))
        finally:
            with self._lock:
                leftovers = list(self._sockets)
                self._sockets.clear()
            for sock in (*leftovers, self._listener, *self._wake):
                sock.close()

    def track(self, sock: socket.socket, *, replacing: socket.socket | None = None) -> bool:
        """Track ``sock`` (in place of the socket it wraps); return ``False`` once stopping."""
        with self._lock:
            if replacing is not None:
                self._sockets.discard(replacing)
            if self.stopping.is_set():
                return False
            self._sockets.add(sock)
            return True

    def untrack(self, sock: socket.socket) -> None:
        """Stop tracking ``sock``, which its thread is about to close."""
        with self._lock:
            self._sockets.discard(sock)

    def connect(self, address: tuple[str, int], timeout: float) -> socket.socket:
        """Open a tracked TCP connection to an IP address; :meth:`stop` aborts it mid-connect.

        Returns:
            The connected socket, with ``timeout`` for its operations; the caller closes it
            (and untracks it first).

        Raises:
            ConnectionAbortedError: the server is stopping.
            OSError: the connection failed or took longer than ``timeout``.
        """
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if not self.track(sock):
                raise ConnectionAbortedError("stopping: no new upstream connection")
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
            if code and not self._wait_connected(sock, timeout):
                raise TimeoutError("timed out")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            sock.settimeout(timeout)
        except BaseException:
            self.untrack(sock)
            sock.close()
            raise
        return sock

    def _wait_connected(self, sock: socket.socket, timeout: float) -> bool:
        """Wait for a connect in progress to end; ``False`` if it timed out."""
        assert self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            selector.register(self._wake[0], selectors.EVENT_READ)
            ready = selector.select(timeout)
        if self.stopping.is_set():
            raise ConnectionAbortedError("stopping: upstream connect abandoned")
        return bool(ready)

    def _accept_loop(self, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        backoff = _BACKOFF
        with selector:
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is not listener:
                        continue
                    if self._accept_one(listener):
                        backoff = _BACKOFF
                    else:
                        # The listener stays readable while accept() keeps failing: wait.
                        self.stopping.wait(backoff)
                        backoff = min(2 * backoff, _MAX_BACKOFF)

    def _accept_one(self, listener: socket.socket) -> bool:
        """Accept one connection; ``False`` when out of descriptors, memory or threads."""
        try:
            conn, address = listener.accept()
        except OSError as exc:
            # Otherwise the client gave up before we got to it.
            return exc.errno not in _EXHAUSTED
        client = (str(address[0]), int(address[1]))
        thread = threading.Thread(
            target=self._run,
            args=(conn, client),
            name=f"{self._name}-conn:{self.port}:{client[1]}",
            daemon=True,
        )
        with self._lock:
            if self.stopping.is_set():
                conn.close()
                return True
            self._sockets.add(conn)
            self._threads.add(thread)
        try:
            thread.start()
        except (RuntimeError, MemoryError):
            # No thread for it (a thread or memory limit): refuse this one, keep serving.
            with self._lock:
                self._sockets.discard(conn)
                self._threads.discard(thread)
            conn.close()
            return False
        return True

    def _run(self, conn: socket.socket, client: tuple[str, int]) -> None:
        try:
            with unaudited():  # what this thread connects to is the server's, not the program's
                self._serve(conn, client)
        finally:
            with self._lock:
                self._sockets.discard(conn)
                self._threads.discard(threading.current_thread())
