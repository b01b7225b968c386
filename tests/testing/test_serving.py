"""The connection server under RecordingProxy and LocalOrigin, attacked (issue 15, B1 B3 B15).

No thread for a connection, no descriptor for ``accept()``, an upstream that never answers a
connect: each server must refuse or wait without harm, keep serving, and stop in its budget.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carto_proxy.testing import LocalOrigin, RecordingProxy
from tests.testing.proxy_client import (
    TIMEOUT,
    _get,
    _read_head,
    _recv_all,
    _run_child,
)


def _stop_in_budget(server: RecordingProxy | LocalOrigin) -> None:
    """Stop ``server``: within a second, leaving none of its threads and no listener."""
    port = server.port
    started = time.monotonic()
    server.stop()  # must not raise "cannot join thread before it is started"
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    # The threads are named after the port: "RecordingProxy-conn:PORT:CLIENT_PORT".
    assert [thread.name for thread in threading.enumerate() if f":{port}" in thread.name] == []
    assert _refused(port)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def _get_origin(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
        return _recv_all(sock).partition(b"\r\n")[0]


@pytest.fixture
def one_thread_refused(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make ``Thread.start`` fail, once, for the next connection thread (a thread limit).

    Accept threads are named ``...-accept:PORT`` and start as usual.
    """
    refused: list[str] = []
    start = threading.Thread.start

    def failing_start(thread: threading.Thread) -> None:
        if "-conn:" in thread.name and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", failing_start)
    return refused


# --- B1: no thread for a connection ---------------------------------------------------------------


def test_proxy_refuses_a_connection_it_has_no_thread_for_and_keeps_serving(
    http_origin: int, one_thread_refused: list[str]
) -> None:
    refused = one_thread_refused
    proxy = RecordingProxy(timeout=TIMEOUT).start()
    try:
        with socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT) as first:
            assert _recv_all(first) == b""  # refused: closed without an answer
        assert len(refused) == 1
        with socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT) as second:
            assert _get(second, f"http://127.0.0.1:{http_origin}/")[0] == 200
    finally:
        _stop_in_budget(proxy)


def test_origin_refuses_a_connection_it_has_no_thread_for_and_keeps_serving(
    one_thread_refused: list[str],
) -> None:
    refused = one_thread_refused
    origin = LocalOrigin().start()
    try:
        with socket.create_connection(("127.0.0.1", origin.port), timeout=TIMEOUT) as first:
            assert _recv_all(first) == b""
        assert len(refused) == 1
        assert _get_origin(origin.port) == b"HTTP/1.1 200 OK"
    finally:
        _stop_in_budget(origin)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
def test_a_server_whose_accept_thread_cannot_start_leaves_nothing_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = threading.Thread.start

    def failing_start(thread: threading.Thread) -> None:
        if "-accept:" in thread.name:
            raise RuntimeError("can't start new thread")
        start(thread)

    proxy = RecordingProxy()
    descriptors = len(list(Path("/proc/self/fd").iterdir()))
    monkeypatch.setattr(threading.Thread, "start", failing_start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        proxy.start()
    assert len(list(Path("/proc/self/fd").iterdir())) == descriptors
    assert "not started" in repr(proxy)
    proxy.stop()  # nothing to stop


# --- B3: no descriptor for accept() -----------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
@pytest.mark.parametrize("kind", ["proxy", "origin"])
def test_out_of_descriptors_the_accept_loop_backs_off_then_serves(kind: str) -> None:
    result = _run_child("tests.testing.exhaustion_child", kind)
    assert result["descriptors"] > 0
    # A spinning loop burns the whole window (1 s); backing off costs milliseconds.
    assert result["cpu"] < 0.25 * result["window"], result
    assert result["status"] == "HTTP/1.1 200 OK", result


# --- B15: stop() during an upstream connect -----------------------------------------------------


@contextlib.contextmanager
def _blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: connects to it hang (SYNs are dropped)."""
    with socket.socket() as listener, contextlib.ExitStack() as stack:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        filler = stack.enter_context(socket.socket())
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        with pytest.raises(TimeoutError):  # the precondition: a connect does hang
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        yield port


def _connecting_to(port: int) -> set[str]:
    """The local addresses of sockets in SYN_SENT towards ``port`` (Linux /proc/net/tcp)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {row[1] for row in rows if row[2].endswith(f":{port:04X}") and row[3] == "02"}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")
@pytest.mark.parametrize("method", ["CONNECT", "GET"])
def test_stop_ends_an_upstream_connect_in_progress(method: str) -> None:
    with _blackhole() as port:
        upstreams = {"hang.example": ("127.0.0.1", port)}
        filler = _connecting_to(port)
        proxy = RecordingProxy(upstreams=upstreams, timeout=TIMEOUT).start()
        with socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT) as sock:
            if method == "CONNECT":
                sock.sendall(b"CONNECT hang.example:443 HTTP/1.1\r\nHost: hang.example\r\n\r\n")
            else:
                sock.sendall(b"GET http://hang.example/ HTTP/1.1\r\nHost: hang.example\r\n\r\n")
            proxy.wait_for(lambda records: len(records) == 1, timeout=TIMEOUT)

            _stop_in_budget(proxy)
            assert _connecting_to(port) == filler  # the proxy's connect is gone
            with contextlib.suppress(ConnectionResetError):
                assert b" 200 " not in _recv_all(sock)
    (record,) = proxy.records
    assert record.done
    assert record.status != 200


def test_an_upstream_connect_times_out_with_a_502(http_origin: int) -> None:
    with _blackhole() as port, RecordingProxy(timeout=0.2) as proxy:
        with socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            head, rest = _read_head(sock)
            body = rest + _recv_all(sock)
        assert head.startswith(b"HTTP/1.1 502 ")
        assert b"timed out" in body
        record = proxy.wait_for(1)[0]
    assert record.status == 502
