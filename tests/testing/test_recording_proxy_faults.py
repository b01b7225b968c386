"""RecordingProxy's injected faults: refusals, upstream failures, cut tunnels, latency."""

from __future__ import annotations

import socket

import pytest

from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import (
    _connect,
    _echo,
    _get,
    _one,
    _proxy_socket,
    _recv_all,
)

# --- faults -----------------------------------------------------------------------------------


def test_refuse_answers_the_given_status_until_cleared(
    proxy: RecordingProxy, echo_port: int, http_origin: int
) -> None:
    proxy.refuse("127.0.0.1")
    proxy.refuse(f"localhost:{http_origin}", status=451)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 403
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://LOCALHOST:{http_origin}/")[0] == 451
        proxy.clear_faults()
        assert _get(sock, f"http://localhost:{http_origin}/")[0] == 200

    records = proxy.wait_for(3)
    assert [record.status for record in records] == [403, 451, 200]
    assert [bool(record.error) for record in records] == [True, True, False]


def test_fail_upstream_answers_502(proxy: RecordingProxy, echo_port: int, http_origin: int) -> None:
    proxy.fail_upstream("127.0.0.1")
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 502
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://127.0.0.1:{http_origin}/")[0] == 502
    records = proxy.wait_for(2)
    assert [record.status for record in records] == [502, 502]
    assert all(record.error and "fail_upstream" in record.error for record in records)


def test_unreachable_upstream_answers_502(proxy: RecordingProxy) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with _proxy_socket(proxy) as sock:
            assert _connect(sock, f"127.0.0.1:{port}")[0] == 502
    record = _one(proxy.wait_for(1))
    assert record.status == 502
    assert record.error is not None


def test_close_mid_tunnel_right_after_establishing(proxy: RecordingProxy, echo_port: int) -> None:
    proxy.close_mid_tunnel("127.0.0.1")
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"127.0.0.1:{echo_port}")
        assert status == 200
        assert rest + _recv_all(sock) == b""
    record = _one(proxy.wait_for(1))
    assert (record.status, record.bytes_up, record.bytes_down) == (200, 0, 0)
    assert record.error is not None
    assert "fault injection" in record.error


def test_close_mid_tunnel_after_some_bytes(proxy: RecordingProxy, echo_port: int) -> None:
    proxy.close_mid_tunnel(f"127.0.0.1:{echo_port}", after_bytes=3)
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        sock.sendall(b"hello")
        assert _recv_all(sock) == b""
    record = _one(proxy.wait_for(1))
    assert (record.bytes_up, record.bytes_down) == (3, 0)
    assert record.error is not None


def test_latency_delays_the_answer(proxy: RecordingProxy, http_origin: int, echo_port: int) -> None:
    proxy.add_latency(0.05)
    proxy.add_latency(0.3, host=f"127.0.0.1:{http_origin}")  # a host's delay wins
    with _proxy_socket(proxy) as sock:
        assert _get(sock, f"http://127.0.0.1:{http_origin}/slow")[0] == 200
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, f"127.0.0.1:{echo_port}")[0] == 200
        assert _echo(sock, b"x") == b"x"
    slow, tunnel = proxy.wait_for(2)
    assert slow.duration is not None
    assert slow.duration >= 0.3
    assert tunnel.duration is not None
    assert tunnel.duration >= 0.05


def test_fault_arguments_are_checked(proxy: RecordingProxy) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        proxy.refuse("example.com", status=200)
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.close_mid_tunnel("example.com", after_bytes=-1)
    with pytest.raises(ValueError, match="seconds"):
        proxy.add_latency(-1.0)
