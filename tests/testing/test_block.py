"""block_direct: going around the proxy fails at the lookup, naming the route; nothing leaves.

Real clients against the kit's own servers, on loopback. Names are under ``.test``; an address
in 192.0.2.0/24 (TEST-NET-1) stands for the internet, and is never reached: the guard refuses
it, and the suite runs in a loopback-only network namespace besides.
"""

from __future__ import annotations

import doctest
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import requests

from carto_proxy import ConfigError, ProxyConfig, audit
from carto_proxy.adapters import httpx as carto_httpx
from carto_proxy.testing import (
    DirectGuard,
    LocalOrigin,
    RecordingProxy,
    assert_tunnelled,
    block_direct,
    proxy_environ,
)
from carto_proxy.testing import _block as block_module

TIMEOUT = 5.0
API = "api.example.test"
INTERNAL = "db.internal.test"
REMOTE = "192.0.2.10"  # TEST-NET-1: stands for an address on the internet


@pytest.fixture(scope="module")
def origin() -> Iterator[LocalOrigin]:
    with LocalOrigin() as running:
        yield running


@pytest.fixture
def proxy(origin: LocalOrigin) -> Iterator[RecordingProxy]:
    with RecordingProxy(upstreams=origin.upstreams(API), timeout=TIMEOUT) as running:
        yield running


@pytest.fixture
def config(proxy: RecordingProxy, origin: LocalOrigin) -> ProxyConfig:
    """The proxy for http and https; .internal.test and TEST-NET-1 direct; the origin trusted."""
    return ProxyConfig.from_env(
        environ={
            "HTTP_PROXY": proxy.url,
            "HTTPS_PROXY": proxy.url,
            "NO_PROXY": f".internal.test,{REMOTE}",
            "NODE_EXTRA_CA_CERTS": origin.ca_file,
        }
    )


def refusal(call: object) -> str:
    """The text of what *call* raised, its causes included."""
    try:
        call()  # type: ignore[operator]
    except Exception as error:
        texts = []
        while error is not None:
            texts.append(str(error))
            error = error.__cause__ or error.__context__  # type: ignore[assignment]
        return " <- ".join(texts)
    raise AssertionError("it did not fail")


CLIENTS = {
    "httpx": lambda url: httpx.Client(trust_env=False, timeout=TIMEOUT).get(url),
    "requests": lambda url: requests.get(url, timeout=TIMEOUT, proxies={}),
    "urllib": lambda url: urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        url, timeout=TIMEOUT
    ),
}


@pytest.mark.parametrize("client", CLIENTS)
def test_a_proxied_host_fails_at_the_lookup_saying_it_went_direct(
    config: ProxyConfig, origin: LocalOrigin, proxy: RecordingProxy, client: str
) -> None:
    origin.clear()
    with block_direct(config, hosts={API: origin.address}) as guard:
        text = refusal(lambda: CLIENTS[client](f"https://{API}/v1"))
    assert f"carto_proxy: {API}:443 went direct: this process looked it up itself" in text
    assert "(tests/testing/test_block.py:" in text  # the line that did it
    assert f"Its route is through the proxy {proxy.url} (HTTPS_PROXY, rule proxy)" in text
    assert f"or add {API} to NO_PROXY if it must go direct" in text  # the fix
    assert "CERTIFICATE_VERIFY_FAILED" not in text
    # Nothing was sent: the origin saw no connection, not even a TLS handshake.
    assert origin.requests == []
    assert origin.errors == []
    assert proxy.records == []
    assert guard.went_direct(API)
    assert API in guard.blocked


def test_hosts_routed_direct_reach_their_local_server_and_are_not_violations(
    config: ProxyConfig, origin: LocalOrigin
) -> None:
    origin.clear()
    with (
        audit(config, on_violation="raise") as watching,
        block_direct(config, hosts={INTERNAL: origin.address}) as guard,
        carto_httpx.client(config, timeout=TIMEOUT) as http,
    ):
        assert http.get(f"https://{INTERNAL}/health").status_code == 200
    assert [(r.server_name, r.path) for r in origin.requests] == [(INTERNAL, "/health")]
    # The guard sent it to the origin's own port: the audits leave that connection alone.
    assert watching.violations == []
    assert guard.went_direct(INTERNAL)


def test_hosts_the_warehouse_rules_send_direct_resolve_too(origin: LocalOrigin) -> None:
    # Snowflake cannot use an https:// proxy, and PostgreSQL is TCP: both go direct.
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "https://127.0.0.1:3129"})
    snowflake = "xy12345.eu-central-1.snowflakecomputing.com"
    hosts = {snowflake: origin.address, "db.example.test": origin.address, API: origin.address}
    with block_direct(config, hosts=hosts):
        assert socket.getaddrinfo(snowflake, 443)[0][4] == origin.address
        assert socket.getaddrinfo("db.example.test", 5432)[0][4] == origin.address
        assert "went direct" in refusal(lambda: socket.getaddrinfo(API, 443))


def test_the_proxys_own_connections_upstream_are_never_violations(
    config: ProxyConfig, origin: LocalOrigin, proxy: RecordingProxy
) -> None:
    with (
        audit(config, on_violation="raise") as watching,
        block_direct(config),
        carto_httpx.client(config, timeout=TIMEOUT) as http,
    ):
        assert http.get(f"https://{API}/v1").status_code == 200
    assert_tunnelled(f"{API}:443", proxy=proxy)
    assert watching.violations == []


def test_names_no_server_answers_for_are_refused_before_any_resolver(
    config: ProxyConfig,
) -> None:
    with block_direct(config) as guard:
        text = refusal(lambda: socket.getaddrinfo(INTERNAL, 5432))
        by_name = refusal(lambda: socket.gethostbyname("files.internal.test"))
    assert f"carto_proxy: {INTERNAL}:5432 was looked up, but no local server is mapped" in text
    assert "a kit test never reaches the network" in text
    assert "block_direct(hosts=...)" in text  # the hint
    assert "files.internal.test was looked up" in by_name
    assert guard.blocked == [INTERNAL, "files.internal.test"]


def test_connections_beyond_loopback_are_refused_even_when_routed_direct(
    config: ProxyConfig,
) -> None:
    with block_direct(config):
        tcp = refusal(lambda: socket.create_connection((REMOTE, 443), timeout=TIMEOUT))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            datagram = refusal(lambda: udp.sendto(b"ping", (REMOTE, 53)))
        reverse = refusal(lambda: socket.gethostbyaddr(REMOTE))
    assert f"a connection to {REMOTE}:443 was refused: a kit test never reaches beyond" in tcp
    assert f"a connection to {REMOTE}:53 was refused" in datagram
    assert f"{REMOTE} was looked up by address" in reverse


def test_a_remote_address_routed_through_the_proxy_went_direct() -> None:
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "http://127.0.0.1:3128"})
    with block_direct(config):
        text = refusal(lambda: socket.create_connection((REMOTE, 443), timeout=TIMEOUT))
    assert f"{REMOTE}:443 went direct: this process connected to it itself" in text


def test_loopback_and_localhost_stay_open(origin: LocalOrigin) -> None:
    with block_direct(ProxyConfig.direct()):
        socket.create_connection(origin.address, timeout=TIMEOUT).close()
        assert socket.getaddrinfo("localhost", origin.port)


def test_without_a_configuration_it_follows_proxy_environ(
    proxy: RecordingProxy, origin: LocalOrigin
) -> None:
    with block_direct(hosts={API: origin.address}):
        assert socket.getaddrinfo(API, 443)[0][4] == origin.address  # no proxy: direct is right
        with proxy_environ(proxy):
            assert "went direct" in refusal(lambda: socket.getaddrinfo(API, 443))
        # Back to no proxy at all: the mapped name resolves again.
        assert socket.getaddrinfo(API, 443)[0][4] == origin.address


def test_a_configuration_given_is_kept_whatever_the_environment(config: ProxyConfig) -> None:
    with block_direct(config), proxy_environ(None):
        assert "went direct" in refusal(lambda: socket.getaddrinfo(API, 443))


def test_an_unreadable_environment_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.test:1080")
    with pytest.raises(ConfigError, match="HTTPS_PROXY"), block_direct():
        pass
    # The pytest plugin's guard is lenient: the fixtures replace the environment.
    with block_module.Blocking(None, hosts=None, hint="", lenient=True):
        assert "no local server" in refusal(lambda: socket.getaddrinfo(API, 443))


def test_after_the_block_nothing_is_refused_any_more(config: ProxyConfig) -> None:
    with block_direct(config):
        pass
    # Numeric only: nothing would refuse it but the resolver, which is never asked.
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(API, 443, flags=socket.AI_NUMERICHOST)


def test_blocks_nest(config: ProxyConfig, origin: LocalOrigin) -> None:
    with block_direct(ProxyConfig.direct(), hosts={INTERNAL: origin.address}):
        with block_direct(config, hosts={API: origin.address}):
            assert "went direct" in refusal(lambda: socket.getaddrinfo(API, 443))
        assert socket.getaddrinfo(INTERNAL, 443)[0][4] == origin.address


def test_it_yields_the_guard_the_assertions_report_on(
    config: ProxyConfig, proxy: RecordingProxy
) -> None:
    with block_direct(config) as guard:
        assert isinstance(guard, DirectGuard)
        refusal(lambda: CLIENTS["httpx"](f"https://{API}/"))
        message = refusal(lambda: assert_tunnelled(f"{API}:443", proxy=proxy))
    assert f"it went direct (this process looked {API} up itself)" in message


def test_docstring_example_runs() -> None:
    result = doctest.testmod(block_module)
    assert result.attempted > 0
    assert result.failed == 0
