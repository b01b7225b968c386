"""RecordingProxy with real clients (raw sockets, urllib3, httpx) and local origins.

Tunnels, forwarding, TLS to the proxy, and the loopback-only rule.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
import urllib3

from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import (
    NOT_ALLOWED,
    TIMEOUT,
    _close_pool,
    _connect,
    _echo,
    _get,
    _one,
    _proxy_socket,
    _recv_all,
)

# --- tunnels and forwarding -------------------------------------------------------------------


def test_connect_tunnel_is_recorded_with_status_and_bytes(
    proxy: RecordingProxy, echo_port: int
) -> None:
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"127.0.0.1:{echo_port}")
        assert (status, rest) == (200, b"")
        assert _echo(sock, b"ping!") == b"ping!"
        client = sock.getsockname()[:2]

    record = _one(proxy.wait_for(1))
    assert record.method == "CONNECT"
    assert record.authority == f"127.0.0.1:{echo_port}"
    assert (record.host, record.port, record.path) == ("127.0.0.1", echo_port, None)
    assert record.client == client
    assert (record.status, record.bytes_up, record.bytes_down, record.error) == (200, 5, 5, None)
    assert record.end is not None
    assert record.end >= record.start
    assert proxy.tunnels == [record]


def test_bytes_sent_right_behind_connect_are_relayed(proxy: RecordingProxy, echo_port: int) -> None:
    with _proxy_socket(proxy) as sock:
        status, rest = _connect(sock, f"localhost:{echo_port}", extra=b"early")
        assert status == 200
        sock.shutdown(socket.SHUT_WR)
        assert rest + _recv_all(sock) == b"early"

    record = _one(proxy.wait_for(1))
    assert (record.host, record.bytes_up, record.bytes_down) == ("localhost", 5, 5)


def test_https_through_a_tunnel_with_urllib3(
    proxy: RecordingProxy, https_origin: int, origin_ca_file: str
) -> None:
    url = f"https://localhost:{https_origin}/secure"
    with urllib3.ProxyManager(proxy.url, ca_certs=origin_ca_file) as manager:
        response = manager.request("GET", url)
        _close_pool(manager, url)
    assert (response.status, response.data) == (200, b"hello /secure")

    record = _one(proxy.wait_for(1))
    assert (record.method, record.authority, record.status) == (
        "CONNECT",
        f"localhost:{https_origin}",
        200,
    )
    assert record.bytes_up > 0
    assert record.bytes_down > len(b"hello /secure")


def test_absolute_form_get_is_forwarded_and_recorded(
    proxy: RecordingProxy, http_origin: int
) -> None:
    with urllib3.ProxyManager(proxy.url) as manager:
        response = manager.request("GET", f"http://127.0.0.1:{http_origin}/path?q=1")
    assert (response.status, response.data) == (200, b"hello /path?q=1")
    # RFC 9112: the Host header comes from the absolute-form target.
    assert response.headers["X-Seen-Host"] == f"127.0.0.1:{http_origin}"

    record = _one(proxy.wait_for(1))
    assert (record.method, record.path, record.status, record.error) == (
        "GET",
        "/path?q=1",
        200,
        None,
    )
    assert (record.bytes_up, record.bytes_down) == (0, len(b"hello /path?q=1"))


def test_keep_alive_serves_three_requests_on_one_client_connection(
    proxy: RecordingProxy, http_origin: int
) -> None:
    base = f"http://127.0.0.1:{http_origin}"
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=TIMEOUT) as client:
        bodies = [client.get(f"{base}{path}").content for path in ("/a", "/chunked", "/eof")]
    assert bodies == [b"hello /a", b"hello /chunked", b"hello /eof"]

    records = proxy.wait_for(3)
    assert [record.path for record in records] == ["/a", "/chunked", "/eof"]
    assert {record.status for record in records} == {200}
    assert len({record.client for record in records}) == 1


def test_raw_keep_alive_and_connection_close(proxy: RecordingProxy, http_origin: int) -> None:
    with _proxy_socket(proxy) as sock:
        for index in range(3):
            assert _get(sock, f"http://127.0.0.1:{http_origin}/{index}") == (
                200,
                f"hello /{index}".encode(),
            )
        assert _get(sock, f"http://127.0.0.1:{http_origin}/last", "Connection: close\r\n")[0] == 200
        assert _recv_all(sock) == b""
    assert len(proxy.wait_for(4)) == 4


def test_request_bodies_sized_and_chunked_are_forwarded(
    proxy: RecordingProxy, http_origin: int
) -> None:
    url = f"http://127.0.0.1:{http_origin}/post"
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=TIMEOUT) as client:
        sized = client.post(url, content=b"abc")
        chunked = client.post(url, content=iter([b"ab", b"cd"]))
    assert (sized.content, chunked.content) == (b"got abc", b"got abcd")

    records = proxy.wait_for(2)
    assert [(record.method, record.bytes_up) for record in records] == [("POST", 3), ("POST", 4)]


# --- TLS to the proxy -------------------------------------------------------------------------


def test_tls_proxy_is_verified_with_its_ca_file(
    http_origin: int, https_origin: int, origin_ca: trustme.CA
) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        assert proxy.url == f"https://localhost:{proxy.port}"
        assert Path(proxy.ca_file).read_text() == proxy.ca_pem
        proxy_context = ssl.create_default_context(cafile=proxy.ca_file)
        origin_context = ssl.create_default_context()
        origin_ca.configure_trust(origin_context)
        with httpx.Client(
            proxy=httpx.Proxy(proxy.url, ssl_context=proxy_context),
            verify=origin_context,
            trust_env=False,
            timeout=TIMEOUT,
        ) as client:
            tunnelled = client.get(f"https://localhost:{https_origin}/tls-in-tls")
            forwarded = client.get(f"http://127.0.0.1:{http_origin}/over-tls")
        assert tunnelled.content == b"hello /tls-in-tls"
        assert forwarded.content == b"hello /over-tls"
        records = proxy.wait_for(2)
        assert [record.method for record in records] == ["CONNECT", "GET"]
        assert proxy.tls_errors == []
        ca_file = proxy.ca_file
    assert not os.path.exists(ca_file)


def test_tls_proxy_works_with_urllib3(https_origin: int, origin_ca_file: str) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        proxy_context = ssl.create_default_context(cafile=proxy.ca_file)
        with urllib3.ProxyManager(
            proxy.url, proxy_ssl_context=proxy_context, ca_certs=origin_ca_file
        ) as manager:
            url = f"https://localhost:{https_origin}/u3"
            response = manager.request("GET", url)
            _close_pool(manager, url)
        assert response.data == b"hello /u3"
        assert _one(proxy.wait_for(1)).status == 200


def test_client_refusing_the_proxy_certificate_is_counted(http_origin: int) -> None:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        untrusting = ssl.create_default_context()  # the system roots, without the proxy's CA
        with (
            httpx.Client(
                proxy=httpx.Proxy(proxy.url, ssl_context=untrusting),
                trust_env=False,
                timeout=TIMEOUT,
            ) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get(f"http://127.0.0.1:{http_origin}/")
        assert len(proxy.wait_for_tls_errors(1)) >= 1
        assert proxy.records == []


# --- upstream mapping and the loopback-only rule ----------------------------------------------


def test_upstreams_send_real_names_to_local_fakes_without_dns(
    https_origin: int, http_origin: int, origin_ca_file: str, outbound: list[object]
) -> None:
    upstreams = {
        "api.example.com:443": ("127.0.0.1", https_origin),
        "plain.example.com": ("localhost", http_origin),
    }
    with (
        RecordingProxy(upstreams=upstreams, timeout=TIMEOUT) as proxy,
        urllib3.ProxyManager(proxy.url, ca_certs=origin_ca_file) as manager,
    ):
        secure = manager.request("GET", "https://api.example.com/v1/ping")
        plain = manager.request("GET", "http://plain.example.com:8080/x")
        _close_pool(manager, "https://api.example.com/")
        records = proxy.wait_for(2)

    assert (secure.status, secure.data) == (200, b"hello /v1/ping")
    assert (plain.data, plain.headers["X-Seen-Host"]) == (b"hello /x", "plain.example.com:8080")
    assert [(record.method, record.authority, record.status) for record in records] == [
        ("CONNECT", "api.example.com:443", 200),
        ("GET", "plain.example.com:8080", 200),
    ]
    assert outbound == []


@pytest.mark.parametrize(
    "authority", ["example.com:443", "10.1.2.3:443", "[2001:db8::1]:443", "api.example.com:8443"]
)
def test_connect_to_anything_but_loopback_or_mapped_is_refused(
    authority: str, https_origin: int, outbound: list[object]
) -> None:
    upstreams = {"api.example.com:443": ("127.0.0.1", https_origin)}
    with RecordingProxy(upstreams=upstreams, timeout=TIMEOUT) as proxy:
        with _proxy_socket(proxy) as sock:
            status, rest = _connect(sock, authority)
            body = rest + _recv_all(sock)
        record = _one(proxy.wait_for(1))
    assert status == 403
    assert NOT_ALLOWED in body.decode()
    assert (record.authority, record.status) == (authority, 403)
    assert record.error is not None
    assert NOT_ALLOWED in record.error
    assert outbound == []


def test_forwarding_to_anything_but_loopback_is_refused(
    proxy: RecordingProxy, outbound: list[object]
) -> None:
    with _proxy_socket(proxy) as sock:
        status, body = _get(sock, "http://example.com/")
        # The refusal keeps the client connection usable.
        assert _get(sock, "http://10.0.0.1:8080/")[0] == 403
    assert status == 403
    assert NOT_ALLOWED in body.decode()
    records = proxy.wait_for(2)
    assert [(record.authority, record.status) for record in records] == [
        ("example.com:80", 403),
        ("10.0.0.1:8080", 403),
    ]
    assert outbound == []


def test_the_outbound_guard_sees_the_proxys_own_connects(outbound: list[object]) -> None:
    """The control for the tests above: an upstream mapped off loopback is caught."""
    upstreams = {"x.example": ("10.9.9.9", 80)}
    with (
        RecordingProxy(upstreams=upstreams, timeout=TIMEOUT) as proxy,
        _proxy_socket(proxy) as sock,
    ):
        assert _connect(sock, "x.example:443")[0] == 502
    assert outbound == [("10.9.9.9", 80)]


def test_malformed_targets_are_answered_400_and_recorded(proxy: RecordingProxy) -> None:
    with _proxy_socket(proxy) as sock:
        status, _ = _get(sock, "/origin-form")
        assert status == 400
    with _proxy_socket(proxy) as sock:
        assert _connect(sock, "no-port.example")[0] == 400
    records = proxy.wait_for(2)
    assert [(record.authority, record.host, record.status) for record in records] == [
        ("/origin-form", "", 400),
        ("no-port.example", "", 400),
    ]
    assert all(record.error for record in records)
