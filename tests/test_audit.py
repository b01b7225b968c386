"""carto_proxy.audit: real clients that go around the proxy are caught; proxied and direct
traffic is not.

The clients talk to the session's loopback origins. The test resolver (``fake_dns``) maps the
test names to 127.0.0.1 and refuses every other name; it raises the ``socket.getaddrinfo``
audit event for the name first, so the audit sees what the client asked for, and nothing here
reaches a real resolver even when an audit lets a lookup through.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import threading
import urllib.request
from collections.abc import Callable

import httpx
import pytest
import requests

from carto_proxy import Action, ProxyConfig, Violation, audit
from tests.adapters.http_cases import error_text
from tests.support.names import API_HOST, DIRECT_HOST, LOOPBACK
from tests.support.origins import Origins
from tests.support.resolver import FakeDNS
from tests.support.squid import Squid

TIMEOUT = 5.0

pytestmark = pytest.mark.integration


@pytest.fixture
def config(squid: Squid, fake_dns: FakeDNS) -> ProxyConfig:
    """Squid for http and https targets; DIRECT_HOST direct."""
    return ProxyConfig.from_env(
        environ={
            "HTTP_PROXY": squid.http_url,
            "HTTPS_PROXY": squid.http_url,
            "NO_PROXY": DIRECT_HOST,
        }
    )


def with_urllib(url: str) -> int:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return int(response.status)


def with_http_client(url: str) -> int:
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=TIMEOUT)
    try:
        conn.request("GET", f"/{rest}")
        return conn.getresponse().status
    finally:
        conn.close()


def with_httpx(url: str) -> int:
    with httpx.Client(timeout=TIMEOUT) as client:  # a plain client: no carto_proxy adapter
        return client.get(url).status_code


def with_requests(url: str) -> int:
    return requests.get(url, timeout=TIMEOUT).status_code


CLIENTS = pytest.mark.parametrize(
    "fetch", [with_urllib, with_http_client, with_httpx, with_requests], ids=lambda f: f.__name__
)


@CLIENTS
def test_a_client_going_direct_to_a_proxied_host_is_refused_before_any_lookup(
    config: ProxyConfig, origins: Origins, fake_dns: FakeDNS, fetch: Callable[[str], int]
) -> None:
    url = origins.http.url_for(API_HOST, "/refused")
    with (
        audit(config, on_violation="raise") as watching,
        pytest.raises((OSError, httpx.ConnectError)) as failure,
    ):
        fetch(url)
    text = error_text(failure.value)
    assert "carto_proxy.audit refused this" in text
    assert f"{API_HOST}:{origins.http.port}" in text
    assert f"via {config.http_proxy}" in text  # the route
    assert "NO_PROXY" in text  # the fix
    assert set(fake_dns.refused) == {API_HOST}  # refused before the test resolver answered
    assert not any(r.path == "/refused" for r in origins.http.requests)
    assert [(v.host, v.port, v.kind) for v in watching.violations] == [
        (API_HOST, origins.http.port, "resolve")
    ]


@CLIENTS
def test_with_a_callable_each_violation_says_where_it_came_from(
    config: ProxyConfig, origins: Origins, fetch: Callable[[str], int]
) -> None:
    seen: list[Violation] = []
    with audit(config, on_violation=seen.append):
        assert fetch(origins.http.url_for(API_HOST, "/called")) == 200  # the test resolver
    (violation,) = seen
    assert (violation.host, violation.port) == (API_HOST, origins.http.port)
    assert violation.kind == "resolve"
    assert violation.route.action is Action.PROXY
    assert violation.route.proxy == config.http_proxy
    # The innermost application frame is the test helper's call into its client library.
    assert violation.where.startswith("tests/test_audit.py:")
    assert "carto_proxy" not in violation.stack_summary[-1].filename  # not the audit's frames
    assert any(frame.name == fetch.__name__ for frame in violation.stack_summary)


def test_warn_logs_once_per_host_and_port_and_lets_the_connection_through(
    config: ProxyConfig, origins: Origins, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="carto_proxy.audit"), audit(config) as watching:
        for _ in range(3):
            assert with_urllib(origins.http.url_for(API_HOST, "/warned")) == 200
        socket.getaddrinfo(API_HOST, 443)
    assert len(watching.violations) == 4
    warnings = [r for r in caplog.records if r.name == "carto_proxy.audit"]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    assert f"{API_HOST}:{origins.http.port} was looked up directly" in warnings[0].getMessage()
    assert warnings[0].carto_proxy_violation == watching.violations[0]


@CLIENTS
def test_direct_routed_hosts_and_the_addresses_they_resolve_to_are_fine(
    config: ProxyConfig, origins: Origins, fake_dns: FakeDNS, fetch: Callable[[str], int]
) -> None:
    with audit(config, on_violation="raise") as watching:
        assert fetch(origins.http.url_for(DIRECT_HOST, "/direct")) == 200
    assert watching.violations == []
    assert fake_dns.resolved(DIRECT_HOST)


def test_clients_that_use_the_proxy_are_fine(
    config: ProxyConfig, squid: Squid, origins: Origins, fake_dns: FakeDNS
) -> None:
    url = origins.http.url_for(API_HOST, "/proxied")
    proxies = {"http": squid.http_url, "https": squid.http_url}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    with audit(config, on_violation="raise") as watching:
        with opener.open(url, timeout=TIMEOUT) as response:
            assert response.status == 200
        assert requests.get(url, proxies=proxies, timeout=TIMEOUT).status_code == 200
        by_name = f"http://localhost:{squid.http_port}"  # the proxy given by name
        with httpx.Client(proxy=by_name, trust_env=False, timeout=TIMEOUT) as client:
            assert client.get(url).status_code == 200
    assert watching.violations == []
    assert not fake_dns.resolved(API_HOST)


def test_a_connection_to_a_proxied_address_is_a_violation(
    config: ProxyConfig, origins: Origins
) -> None:
    with audit(config, on_violation="raise") as watching, pytest.raises(OSError, match="refused"):
        socket.create_connection((LOOPBACK, origins.http.port), timeout=TIMEOUT)
    assert [(v.host, v.kind) for v in watching.violations] == [(LOOPBACK, "connect")]
    excluded = ProxyConfig.from_env(
        environ={"HTTPS_PROXY": str(config.https_proxy), "NO_PROXY": "127.0.0.0/8"}
    )
    with audit(excluded, on_violation="raise") as watching:
        socket.create_connection((LOOPBACK, origins.http.port), timeout=TIMEOUT).close()
    assert watching.violations == []


def test_asyncio_lookups_in_executor_threads_and_literal_connections_are_seen(
    config: ProxyConfig, origins: Origins
) -> None:
    async def connect(host: str) -> None:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, origins.http.port), 5)
        writer.close()
        await writer.wait_closed()

    seen: list[Violation] = []
    with audit(config, on_violation=seen.append):
        asyncio.run(connect(API_HOST))  # looked up in the loop's executor
    with audit(config, on_violation=seen.append):
        asyncio.run(connect(LOOPBACK))  # no lookup at all: the connection is judged
    assert [(v.host, v.kind) for v in seen] == [(API_HOST, "resolve"), (LOOPBACK, "connect")]


def test_what_is_not_a_proxied_tcp_stream_is_not_judged(config: ProxyConfig) -> None:
    with audit(config, on_violation="raise") as watching:
        socket.getaddrinfo(API_HOST, 53, type=socket.SOCK_DGRAM)  # DNS, syslog...
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.connect((LOOPBACK, 9))
        socket.getaddrinfo(API_HOST, 5432)  # PostgreSQL: TCP, never proxied
        socket.getaddrinfo(LOOPBACK, 8080)  # a literal: nothing is looked up
        socket.getaddrinfo(config.http_proxy.host, config.http_proxy.port)  # type: ignore[union-attr]
    assert watching.violations == []


@pytest.mark.parametrize(("port", "violation"), [(443, True), (80, False), (8443, False)], ids=str)
def test_one_proxy_variable_judges_only_the_ports_it_certainly_covers(
    fake_dns: FakeDNS, port: int, violation: bool
) -> None:
    # Only HTTPS_PROXY: port 80 is HTTP (direct), 8443 could be either, 443 is HTTPS.
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "http://127.0.0.1:3128"})
    with audit(config, on_violation="warn") as watching:
        socket.getaddrinfo(API_HOST, port)
    assert bool(watching.violations) is violation


def test_a_proxy_on_a_web_port_is_known_by_its_name_only(fake_dns: FakeDNS) -> None:
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": f"https://{DIRECT_HOST}:443"})
    with audit(config, on_violation="warn") as watching:
        socket.getaddrinfo(DIRECT_HOST, 443)  # the proxy
        socket.getaddrinfo(API_HOST, 443)  # not the proxy, for all that it shares its port
    assert [v.host for v in watching.violations] == [API_HOST]


def test_port_less_lookups_are_judged(config: ProxyConfig) -> None:
    with audit(config, on_violation="raise"), pytest.raises(OSError, match=API_HOST):
        socket.gethostbyname(API_HOST)


def test_stopping_ends_the_watch_and_keeps_the_findings(config: ProxyConfig) -> None:
    watching = audit(config, on_violation="warn")
    socket.getaddrinfo(API_HOST, 443)
    assert watching.active
    watching.stop()
    watching.stop()
    socket.getaddrinfo(API_HOST, 443)
    assert not watching.active
    assert len(watching.violations) == 1
    assert "stopped" in repr(watching)


def test_audits_nest_and_each_judges_by_its_own_configuration(
    config: ProxyConfig, fake_dns: FakeDNS
) -> None:
    everything_direct = ProxyConfig.from_env(
        environ={"HTTPS_PROXY": str(config.https_proxy), "NO_PROXY": "*"}
    )
    outer: list[Violation] = []
    with audit(config, on_violation=outer.append):
        with audit(everything_direct, on_violation="raise") as inner:
            socket.getaddrinfo(API_HOST, 443)
        socket.getaddrinfo(DIRECT_HOST, 443)
    assert [v.host for v in outer] == [API_HOST]
    assert inner.violations == []


def test_violations_from_other_threads_are_recorded(config: ProxyConfig) -> None:
    with audit(config, on_violation="warn") as watching:
        worker = threading.Thread(target=socket.getaddrinfo, args=(API_HOST, 443))
        worker.start()
        worker.join(TIMEOUT)
    assert [v.host for v in watching.violations] == [API_HOST]


def test_the_audits_own_work_is_not_judged(config: ProxyConfig) -> None:
    seen: list[Violation] = []

    def callback(violation: Violation) -> None:
        seen.append(violation)
        socket.getaddrinfo(API_HOST, 443)  # a callback that reports over the network

    with audit(config, on_violation=callback):
        socket.getaddrinfo(API_HOST, 443)
    assert len(seen) == 1


def test_what_a_callback_raises_fails_the_lookup(config: ProxyConfig) -> None:
    def refuse(violation: Violation) -> None:
        raise ConnectionRefusedError(f"no: {violation.host}")

    with audit(config, on_violation=refuse), pytest.raises(ConnectionRefusedError, match=API_HOST):
        socket.getaddrinfo(API_HOST, 443)


def test_config_none_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, fake_dns: FakeDNS
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    with audit() as watching:
        socket.getaddrinfo(API_HOST, 443)
    assert watching.config.https_proxy is not None
    assert [v.route.variable for v in watching.violations] == ["HTTPS_PROXY"]


@pytest.mark.parametrize("value", ["ignore", "WARN", None, 3])
def test_on_violation_must_be_warn_raise_or_a_callable(value: object) -> None:
    with pytest.raises(ValueError, match="on_violation"):
        audit(ProxyConfig.direct(), on_violation=value)  # type: ignore[arg-type]
