"""RecordingProxy at scale and at shutdown, and its API surface."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time

import pytest

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._recording_proxy import ProxyRecord, RecordingProxy
from tests.testing.proxy_client import (
    TIMEOUT,
    _connect,
    _echo,
    _get,
    _one,
    _proxy_socket,
    _proxy_threads,
    _recv_all,
)

# --- scale and shutdown -----------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_one_hundred_concurrent_tunnels(tls: bool, echo_port: int) -> None:
    count = 100
    open_at_barrier: list[int] = []
    errors: list[BaseException] = []
    with RecordingProxy(tls=tls, timeout=TIMEOUT) as proxy:

        def count_open() -> None:
            open_at_barrier.append(sum(not tunnel.done for tunnel in proxy.tunnels))

        barrier = threading.Barrier(count, action=count_open, timeout=TIMEOUT)

        def client(index: int) -> None:
            try:
                with _proxy_socket(proxy) as sock:
                    assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
                    barrier.wait()
                    payload = f"tunnel {index:03}".encode()
                    assert _echo(sock, payload) == payload
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=client, args=(index,)) for index in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 2)
        assert errors == []
        records = proxy.wait_for(count, timeout=TIMEOUT)

    assert open_at_barrier == [count]
    assert len(records) == count
    assert {(record.status, record.bytes_up, record.bytes_down) for record in records} == {
        (200, 10, 10)
    }


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stop_is_fast_and_leaves_nothing_behind(
    tls: bool, echo_port: int, http_origin: int
) -> None:
    proxy = RecordingProxy(tls=tls, timeout=TIMEOUT).start()
    port = proxy.port
    with contextlib.ExitStack() as stack:
        tunnels = [stack.enter_context(_proxy_socket(proxy)) for _ in range(3)]
        for sock in tunnels:
            assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        keep_alive = stack.enter_context(_proxy_socket(proxy))
        assert _get(keep_alive, f"http://127.0.0.1:{http_origin}/")[0] == 200
        proxy.add_latency(30.0, host="slow.example")
        slow = stack.enter_context(_proxy_socket(proxy))
        slow.sendall(b"CONNECT slow.example:443 HTTP/1.1\r\n\r\n")
        # A connection that never sends a byte (for TLS: never starts its handshake).
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", port), TIMEOUT))
        proxy.wait_for(lambda records: len(records) == 5, timeout=TIMEOUT)

        started = time.monotonic()
        proxy.stop()
        elapsed = time.monotonic() - started

        assert elapsed < 1.0
        assert _proxy_threads() == []
        for sock in [*tunnels, keep_alive, slow, silent]:
            assert _recv_all(sock) == b""
    assert all(record.done for record in proxy.records)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    proxy.stop()  # a second stop is harmless


# --- API surface ------------------------------------------------------------------------------


def test_url_repr_and_properties() -> None:
    proxy = RecordingProxy()
    assert repr(proxy) == "<RecordingProxy not started tls=False records=0>"
    with pytest.raises(RuntimeError, match="not started"):
        _ = proxy.url
    with pytest.raises(RuntimeError, match="tls=True"):
        _ = proxy.ca_pem
    with proxy:
        assert (proxy.scheme, proxy.host, proxy.tls) == ("http", "127.0.0.1", False)
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        assert repr(proxy) == f"<RecordingProxy {proxy.url} tls=False records=0>"
        with pytest.raises(RuntimeError, match="once"):
            proxy.start()
    with pytest.raises(RuntimeError, match="once"):
        proxy.start()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_ipv6_listener(tls: bool, echo_port: int) -> None:
    with RecordingProxy(host="::1", tls=tls, timeout=TIMEOUT) as proxy:
        assert proxy.url == f"{proxy.scheme}://[::1]:{proxy.port}"
        with _proxy_socket(proxy) as sock:
            assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
            assert _echo(sock, b"v6") == b"v6"
        record = _one(proxy.wait_for(1))
    assert record.client[0] == "::1"


def test_seen_matches_host_or_exact_authority(
    proxy: RecordingProxy, http_origin: int, echo_port: int
) -> None:
    with _proxy_socket(proxy) as sock:
        _get(sock, f"http://localhost:{http_origin}/")
        _get(sock, f"http://127.0.0.1:{http_origin}/")
    with _proxy_socket(proxy) as sock:
        _connect(sock, f"127.0.0.1:{echo_port}")
    proxy.wait_for(3)
    assert len(proxy.seen("LocalHost")) == 1
    assert len(proxy.seen("127.0.0.1")) == 2
    assert [record.method for record in proxy.seen(f"127.0.0.1:{echo_port}")] == ["CONNECT"]
    assert proxy.seen("localhost:1") == []
    proxy.clear()
    assert proxy.records == []


def test_wait_for_takes_a_predicate_and_times_out(proxy: RecordingProxy, echo_port: int) -> None:
    with pytest.raises(TimeoutError, match="timed out"):
        proxy.wait_for(1, timeout=0.05)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200

        def open_tunnel(records: list[ProxyRecord]) -> bool:
            return any(record.status == 200 and not record.done for record in records)

        assert len(proxy.wait_for(open_tunnel)) == 1
        assert _echo(sock, b"done") == b"done"
    assert proxy.wait_for(lambda records: all(record.done for record in records))[0].done


def test_constructor_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RecordingProxy(host="0.0.0.0")
    with pytest.raises(ValueError, match="never resolves"):
        RecordingProxy(upstreams={"api.example.com": ("origin.internal", 443)})


def test_tls_without_trustme_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(MissingExtraError, match=r"carto-proxy\[testing\]"):
        RecordingProxy(tls=True)
