"""Self-test of the integration harness in tests/support (real Squid, local origins)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import squid as squid_module
from tests.support.names import API_HOST, DENIED_HOST, DIRECT_HOST, LOOPBACK, SNOWFLAKE_HOST
from tests.support.origins import Origins, OriginServer
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS
from tests.support.squid import AccessLogEntry, Squid, SquidLog, unavailable

TIMEOUT = 5.0


def _read_head(sock: socket.socket) -> tuple[int, bytes]:
    """Read an HTTP response head byte by byte (so no tunnel bytes are consumed)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
        assert len(head) < 65536, head
    status = int(head.split(b" ", 2)[1])
    return status, head


def _connect(proxy: socket.socket, authority: str) -> int:
    proxy.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    return _read_head(proxy)[0]


def _proxy_get(squid: Squid, url: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, squid.http_port, timeout=TIMEOUT)
    try:
        # An absolute URL goes on the request line as is: forward-proxy form.
        conn.request("GET", url)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may contain spaces: the ppid follows the last ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.integration
def test_squid_starts_denies_and_stops_without_leftovers(
    squid_factory: Callable[..., Squid],
) -> None:
    proxy = squid_factory(deny_domains=[".blocked.example.test"], hosts={API_HOST: LOOPBACK})
    pid, directory = proxy.pid, proxy.directory
    assert proxy.running
    assert _alive(pid)
    children = _children(pid) if Path("/proc/self").exists() else []

    status, _ = _proxy_get(proxy, "http://a.blocked.example.test/")
    assert status == 403
    proxy.wait_for(lambda e: e.host == "a.blocked.example.test" and e.status == 403)

    started = time.monotonic()
    proxy.stop()
    stop_seconds = time.monotonic() - started
    assert not proxy.running
    assert not _alive(pid), f"squid PID {pid} still exists"
    assert not [child for child in children if _alive(child)]
    assert directory is not None
    assert not directory.exists()
    with pytest.raises(OSError, match="refused"):
        socket.create_connection((LOOPBACK, proxy.http_port), timeout=TIMEOUT).close()
    assert stop_seconds < 10


@pytest.mark.integration
def test_connect_through_plain_port_is_logged(
    squid: Squid, squid_log: SquidLog, origins: Origins, pki: PKI
) -> None:
    authority = f"{API_HOST}:{origins.https.port}"
    with socket.create_connection((LOOPBACK, squid.http_port), timeout=TIMEOUT) as raw:
        assert _connect(raw, authority) == 200
        context = pki.client_context(pki.origin_ca_path)
        with context.wrap_socket(raw, server_hostname=API_HOST) as tls:
            tls.sendall(f"GET /tunnel HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)
            response.begin()
            body = json.loads(response.read())
    assert body == {"origin": "https", "path": "/tunnel", "host": authority}

    entry = squid_log.wait_for_host(API_HOST, method="CONNECT", timeout=TIMEOUT)
    assert entry.result == "TCP_TUNNEL"
    assert entry.status == 200
    assert entry.port == origins.https.port
    assert entry.target == authority
    assert entry.authority == authority
    assert entry.listener_port == squid.http_port
    assert entry.client == LOOPBACK
    assert entry.server == LOOPBACK


@pytest.mark.integration
def test_forward_get_uses_hosts_file(squid: Squid, squid_log: SquidLog, origins: Origins) -> None:
    url = origins.http.url_for(API_HOST, "/x?q=1")
    status, raw = _proxy_get(squid, url)
    assert status == 200
    body = json.loads(raw)
    assert body["origin"] == "http"
    assert body["path"] == "/x?q=1"
    assert body["host"] == f"{API_HOST}:{origins.http.port}"
    assert API_HOST in origins.http.hosts_seen()

    entry = squid_log.wait_for_host(API_HOST, method="GET", timeout=TIMEOUT)
    assert entry.status == 200
    assert entry.target == url
    assert entry.port == origins.http.port
    assert entry.server == LOOPBACK
    assert entry.host_header == f"{API_HOST}:{origins.http.port}"
    assert squid_log.seen(API_HOST) == [entry]


@pytest.mark.integration
def test_tls_listener_verifies_with_proxy_ca(
    squid: Squid, squid_log: SquidLog, origins: Origins, pki: PKI
) -> None:
    assert squid.https_url == f"https://localhost:{squid.https_port}"
    raw = socket.create_connection((LOOPBACK, squid.https_port), timeout=TIMEOUT)
    with pki.client_context(pki.proxy_ca_path).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert _connect(tls, f"{LOOPBACK}:{origins.http.port}") == 200
    entry = squid_log.wait_for_host(LOOPBACK, method="CONNECT", timeout=TIMEOUT)
    assert entry.listener_port == squid.https_port

    # The listener's certificate chains to proxy_ca only.
    raw = socket.create_connection((LOOPBACK, squid.https_port), timeout=TIMEOUT)
    with pytest.raises(ssl.SSLCertVerificationError):
        pki.client_context(pki.origin_ca_path).wrap_socket(raw, server_hostname="localhost")
    raw.close()


@pytest.mark.integration
def test_deny_domains_gives_403(squid: Squid, squid_log: SquidLog, origins: Origins) -> None:
    origins.clear()
    status, _ = _proxy_get(squid, origins.http.url_for(DENIED_HOST, "/no"))
    assert status == 403
    with socket.create_connection((LOOPBACK, squid.http_port), timeout=TIMEOUT) as raw:
        assert _connect(raw, f"{DENIED_HOST}:443") == 403
    squid_log.wait_for(lambda e: e.host == DENIED_HOST and e.method == "CONNECT", TIMEOUT)
    entries = squid_log.seen(DENIED_HOST)
    assert {(e.method, e.status, e.result) for e in entries} == {
        ("GET", 403, "TCP_DENIED"),
        ("CONNECT", 403, "TCP_DENIED"),
    }
    assert DENIED_HOST not in origins.http.hosts_seen()


@pytest.mark.integration
def test_names_outside_hosts_file_fail_fast_without_dns(squid: Squid) -> None:
    started = time.monotonic()
    status, _ = _proxy_get(squid, "http://not-mapped.example.test/")
    assert status in (502, 503)
    assert time.monotonic() - started < TIMEOUT


def test_log_view_hides_older_transactions(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    line = "{start} 127.0.0.1 3128 TCP_TUNNEL 200 CONNECT %5B::1%5D 443 ::1 - [::1]:443\n"
    log.write_text(line.format(start=time.time() - 60))
    view = SquidLog.at_end(log)
    with log.open("a") as out:
        out.write(line.format(start=time.time() - 30))  # logged late, started before the view
        out.write(line.format(start=time.time() + 1))
        out.write("partial")
    (entry,) = view.entries()
    assert entry == AccessLogEntry.parse(line.format(start=entry.start))
    assert (entry.host, entry.port, entry.authority) == ("::1", 443, "[::1]:443")
    assert entry.host_header is None
    assert view.seen("[::1]", method="connect") == [entry]


def test_fake_dns_maps_test_names_and_refuses_others() -> None:
    original = socket.getaddrinfo
    with FakeDNS() as dns:
        for name in (DIRECT_HOST, SNOWFLAKE_HOST.upper() + ".", "localhost"):
            infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
            assert {info[4][0] for info in infos} == {LOOPBACK}
        assert socket.gethostbyname(API_HOST) == LOOPBACK
        assert socket.getaddrinfo("10.1.2.3", 80)[0][4][0] == "10.1.2.3"
        with pytest.raises(socket.gaierror, match="not a test host name"):
            socket.getaddrinfo("pypi.org", 443)
        with pytest.raises(socket.gaierror):
            socket.create_connection(("example.com", 80), timeout=TIMEOUT)
        assert dns.resolved(SNOWFLAKE_HOST)
        assert not dns.resolved("10.1.2.3")
        assert dns.refused == ["pypi.org", "example.com"]
    assert socket.getaddrinfo is original


@pytest.mark.integration
def test_direct_https_to_test_name(origins: Origins, pki: PKI, fake_dns: FakeDNS) -> None:
    context = pki.client_context(pki.origin_ca_path)
    conn = http.client.HTTPSConnection(
        DIRECT_HOST, origins.https.port, context=context, timeout=TIMEOUT
    )
    try:
        for path in ("/one", "/two"):  # keep-alive: both on one connection
            conn.request("POST", path, body=b"{}")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["path"] == path
    finally:
        conn.close()
    mine = [r for r in origins.https.requests if r.path in ("/one", "/two")][-2:]
    assert [r.method for r in mine] == ["POST", "POST"]
    assert mine[0].client == mine[1].client
    assert mine[0].host == f"{DIRECT_HOST}:{origins.https.port}"
    assert fake_dns.resolved(DIRECT_HOST)

    untrusted = http.client.HTTPSConnection(
        DIRECT_HOST, origins.untrusted.port, context=context, timeout=TIMEOUT
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusted.request("GET", "/")
    untrusted.close()
    deadline = time.monotonic() + TIMEOUT
    while not origins.untrusted.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(isinstance(e, ssl.SSLError) for e in origins.untrusted.errors)


def test_origin_stops_within_a_second_with_idle_keepalive() -> None:
    with OriginServer("solo") as server:
        port = server.port
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=TIMEOUT)
        conn.request("GET", "/")
        assert conn.getresponse().read()
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        conn.close()
    # Its LocalOrigin's threads (the accept loop, the kept-alive connection) name its port.
    assert not [t for t in threading.enumerate() if f":{port}" in t.name]


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip")])
def test_missing_squid_skips_locally_and_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="squid not found"):
        unavailable("squid not found")


@pytest.mark.integration
def test_squid_retries_when_its_port_is_taken(
    squid_factory: Callable[..., Squid], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = squid_module._free_port
        monkeypatch.setattr(squid_module, "_free_port", lambda: next(ports, None) or real())
        proxy = squid_factory()
    assert proxy.running
    assert proxy.http_port != busy
