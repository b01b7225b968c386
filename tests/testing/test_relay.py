"""The tunnel relay under load: both directions at once, with a peer that talks before it reads."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import TIMEOUT, _connect, _one, _proxy_socket

SIZE = 32 * 1024 * 1024  # well over what loopback sockets buffer
BLOCK = bytes(range(256)) * 256


@contextlib.contextmanager
def _talker(received: list[int]) -> Iterator[int]:
    """A server that sends SIZE bytes before it reads any, then counts what it reads."""
    listener = socket.create_server(("127.0.0.1", 0))

    def talk() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                for _ in range(SIZE // len(BLOCK)):
                    conn.sendall(BLOCK)
                count = 0
                while count < SIZE and (chunk := conn.recv(262144)):
                    count += len(chunk)
                received.append(count)

    thread = threading.Thread(target=talk, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(TIMEOUT)


_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _send_while_receiving(sock: socket.socket, heard: bytearray) -> bytes:
    """Send SIZE bytes while reading until ``heard`` holds SIZE, in one thread (a TLS socket
    is not safe to read and write from two)."""
    sock.setblocking(False)
    sent = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(heard) < SIZE or sent < SIZE:
            if sent == SIZE:
                selector.modify(sock, selectors.EVENT_READ)
            if len(heard) == SIZE and sent < SIZE:
                selector.modify(sock, selectors.EVENT_WRITE)
            ready = selector.select(TIMEOUT)
            assert ready, f"stalled after sending {sent} and receiving {len(heard)} bytes"
            events = ready[0][1]
            if events & selectors.EVENT_WRITE and sent < SIZE:
                with contextlib.suppress(*_WOULD_BLOCK):
                    sent += sock.send(BLOCK[sent % len(BLOCK) :])
            while events & selectors.EVENT_READ:
                try:
                    chunk = sock.recv(262144)
                except _WOULD_BLOCK:
                    break
                assert chunk, f"closed after {len(heard)} bytes"
                heard += chunk
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    break
    return bytes(heard)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_both_directions_at_once_never_deadlock(tls: bool) -> None:
    """A relay that blocks on a send waits on an upstream that waits on the relay."""
    # The old relay's blocking send hit the upstream timeout (2 s) instead of hanging on.
    received: list[int] = []
    with _talker(received) as port, RecordingProxy(tls=tls, timeout=2.0) as proxy:
        with _proxy_socket(proxy) as sock:
            status, early = _connect(sock, f"127.0.0.1:{port}")  # the talker starts at once
            assert status == 200
            heard = _send_while_receiving(sock, bytearray(early))
        assert heard == BLOCK * (SIZE // len(BLOCK))
        record = _one(proxy.wait_for(1))
    assert received == [SIZE]
    assert (record.bytes_up, record.bytes_down, record.error) == (SIZE, SIZE, None)
