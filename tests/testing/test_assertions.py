"""assert_tunnelled / assert_proxied / assert_not_proxied against a real RecordingProxy."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest

from carto_proxy.testing import (
    DirectGuard,
    RecordingProxy,
    assert_not_proxied,
    assert_proxied,
    assert_tunnelled,
)
from carto_proxy.testing._assertions import describe_record, using


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    """A loopback server that answers every connection with one HTTP response, then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone would not
    server.close()
    thread.join(timeout=5)


def connect(proxy: RecordingProxy, authority: str) -> bytes:
    """CONNECT through the proxy and return its answer's status line."""
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        return sock.recv(65536).split(b"\r\n", 1)[0]


def forward(proxy: RecordingProxy, url: str) -> bytes:
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_tunnel_found_by_authority_host_or_url(upstream: tuple[str, int]) -> None:
    with RecordingProxy(upstreams={"api.example.com": upstream}) as proxy:
        assert connect(proxy, "api.example.com:443") == b"HTTP/1.1 200 Connection established"
        record = assert_tunnelled("api.example.com:443", proxy=proxy)
        assert record.authority == "api.example.com:443"
        assert assert_tunnelled("API.example.com", proxy=proxy) == record
        assert assert_tunnelled("https://api.example.com/v1?q=1", proxy=proxy) == record
        with pytest.raises(AssertionError, match=r"^api\.example\.com:8443 was not tunnelled"):
            assert_tunnelled("https://api.example.com:8443/", proxy=proxy)


def test_failure_lists_what_the_proxy_saw(upstream: tuple[str, int]) -> None:
    with RecordingProxy(upstreams={"auth.example.com": upstream}) as proxy:
        connect(proxy, "auth.example.com:443")
        forward(proxy, "http://auth.example.com/token")
        proxy.wait_for(2)
        expected = (
            f"api.example.com:443 was not tunnelled through the proxy {proxy.url}; the proxy "
            "saw: [CONNECT auth.example.com:443 → 200, "
            "GET http://auth.example.com:80/token → 200]"
        )
        with pytest.raises(AssertionError, match=f"^{re.escape(expected)}$"):
            assert_tunnelled("api.example.com:443", proxy=proxy)


def test_failure_with_an_empty_proxy_says_nothing_was_seen() -> None:
    with RecordingProxy() as proxy, pytest.raises(AssertionError, match=r"the proxy saw: nothing$"):
        assert_tunnelled("api.example.com", proxy=proxy)


def test_the_guard_names_the_host_that_went_direct() -> None:
    with RecordingProxy() as proxy, DirectGuard() as guard, using(proxy, guard):
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("api.example.com", 443)
        with pytest.raises(
            AssertionError,
            match=r"through the proxy http://127\.0\.0\.1:\d+: it went direct \(this process "
            r"looked api\.example\.com up itself\); the proxy saw: nothing",
        ):
            assert_tunnelled("api.example.com:443")  # the defaults from using()


def test_refused_tunnel_is_reported_with_the_proxy_answer() -> None:
    with RecordingProxy() as proxy:
        assert connect(proxy, "api.example.com:443").startswith(b"HTTP/1.1 403")
        assert assert_tunnelled("api.example.com", proxy=proxy, status=403).status == 403
        assert assert_tunnelled("api.example.com", proxy=proxy, status=None).status == 403
        with pytest.raises(AssertionError) as caught:
            assert_tunnelled("api.example.com", proxy=proxy)
    message = str(caught.value)
    assert message.startswith(
        f"api.example.com reached the proxy {proxy.url}, but not with status 200: "
        "CONNECT api.example.com:443 → 403 (api.example.com:443 is not a loopback address"
    )
    assert message.endswith("so that the proxy can connect")


def test_waits_for_the_answer_to_a_tunnel_already_received(upstream: tuple[str, int]) -> None:
    with RecordingProxy(upstreams={"slow.example.com": upstream}) as proxy:
        proxy.add_latency(0.3, "slow.example.com")
        client = threading.Thread(target=connect, args=(proxy, "slow.example.com:443"))
        client.start()
        (pending,) = proxy.wait_for(lambda records: len(records) == 1)
        assert pending.status is None  # received, not answered: the helper must wait
        assert assert_tunnelled("slow.example.com:443", proxy=proxy, timeout=5).status == 200
        client.join(timeout=5)


def test_forwarded_requests_count_as_proxied_not_tunnelled(upstream: tuple[str, int]) -> None:
    with RecordingProxy(upstreams={"files.example.com": upstream}) as proxy:
        assert forward(proxy, "http://files.example.com/report.csv") == b"HTTP/1.1 200 OK"
        record = assert_proxied("http://files.example.com/report.csv", proxy=proxy)
        assert (record.method, record.path, record.status) == ("GET", "/report.csv", 200)
        assert describe_record(record) == "GET http://files.example.com:80/report.csv → 200"
        with pytest.raises(AssertionError, match="was not tunnelled"):
            assert_tunnelled("files.example.com", proxy=proxy)
        with pytest.raises(AssertionError, match="was not sent through the proxy"):
            assert_proxied("other.example.com", proxy=proxy)


def test_not_proxied(upstream: tuple[str, int]) -> None:
    with RecordingProxy(upstreams={"db.internal": upstream}) as proxy:
        assert_not_proxied("db.internal", proxy=proxy)
        connect(proxy, "db.internal:5432")
        proxy.wait_for(1)
        assert_not_proxied("db.internal:5433", proxy=proxy)  # another port is fine
        with pytest.raises(AssertionError) as caught:
            assert_not_proxied("postgresql://user@db.internal:5432/carto", proxy=proxy)
    assert str(caught.value) == (
        "db.internal:5432 went through the proxy (CONNECT db.internal:5432 → 200), "
        "but it should have gone direct"
    )


def test_long_histories_are_cut() -> None:
    with RecordingProxy() as proxy:
        for i in range(25):
            connect(proxy, f"h{i}.example:443")
        proxy.wait_for(25)
        with pytest.raises(AssertionError, match=r"h19\.example:443 → 403 .*\.\.\. and 5 more\]$"):
            assert_tunnelled("api.example.com", proxy=proxy)


def test_without_a_proxy_the_helpers_say_what_they_need() -> None:
    for helper in (assert_tunnelled, assert_proxied, assert_not_proxied):
        with pytest.raises(TypeError, match=rf"^{helper.__name__}\(\) needs proxy="):
            helper("api.example.com")


def test_using_prefers_the_innermost_and_unless_set_yields() -> None:
    first, second = RecordingProxy(), RecordingProxy()
    with first, second, using(first), using(second, unless_set=True):
        with pytest.raises(AssertionError, match=re.escape(first.url)):
            assert_tunnelled("x.example")
        with using(second), pytest.raises(AssertionError, match=re.escape(second.url)):
            assert_tunnelled("x.example")
