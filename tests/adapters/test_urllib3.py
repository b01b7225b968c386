"""carto_proxy.adapters.urllib3: unit tests (no network) and the shared Squid integration cases."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import threading
from typing import Any

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st

from carto_proxy import Action, ConfigError, ProxyConfig, Route
from carto_proxy.adapters.urllib3 import (
    RoutingPoolManager,
    _parse_origin,
    pool_manager,
    request_origin,
)
from carto_proxy.adapters.urllib3 import route_for as urllib3_route_for
from carto_proxy.testing import RecordingProxy, record_routes
from tests.adapters.http_cases import (
    CONFIG,
    TIMEOUT,
    Driver,
    Fetcher,
    HTTPAdapterCases,
    Reply,
    make_config,
    make_hostile,
)
from tests.adapters.observe_cases import ObservedAdapterCases
from tests.adapters.trickle_cases import TrickleCases
from tests.support.origins import Origins
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS


def tls_config(reject: str = "1") -> ProxyConfig:
    return ProxyConfig.from_env(
        environ={
            "HTTP_PROXY": "https://tls-proxy.test:3129",
            "HTTPS_PROXY": "https://tls-proxy.test:3129",
            "NODE_TLS_REJECT_UNAUTHORIZED": reject,
        }
    )


# -- unit tests -----------------------------------------------------------------------------------


def test_is_a_pool_manager() -> None:
    manager = pool_manager(CONFIG)
    assert isinstance(manager, urllib3.PoolManager)
    assert isinstance(manager, RoutingPoolManager)
    assert manager.proxy is None  # the router itself is no ProxyManager


@pytest.mark.parametrize(
    ("url", "proxy", "pool_host"),
    [
        # https targets: a pool to the origin, tunnelled through the proxy.
        ("https://api.carto.com/v3", "http://proxy.test:3128", "api.carto.com"),
        # http targets: the pool to the proxy itself, which forwards absolute URLs.
        ("http://api.carto.com/v3", "http://plain-only.test:8080", "plain-only.test"),
        ("https://direct.test/x", None, "direct.test"),
        ("https://a.direct.test:8443/x", None, "a.direct.test"),
        ("http://10.9.8.7/x", None, "10.9.8.7"),
    ],
)
def test_each_url_follows_the_config_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, url: str, proxy: str | None, pool_host: str
) -> None:
    make_hostile(monkeypatch)
    pool = pool_manager(CONFIG).connection_from_url(url)
    assert (None if pool.proxy is None else pool.proxy.url) == proxy
    assert pool.host == pool_host


def test_proxy_managers_are_one_per_proxy_url() -> None:
    config = ProxyConfig.from_env(
        environ={"HTTP_PROXY": "http://p.test:3128", "HTTPS_PROXY": "http://p.test:3128"}
    )
    manager = pool_manager(config)
    tunnel = manager.connection_from_url("https://a.test")
    forward = manager.connection_from_url("http://a.test")
    assert tunnel.proxy == forward.proxy
    assert tunnel is manager.connection_from_url("https://a.test/other/path")
    assert len(manager._inner.proxied) == 1


@pytest.mark.parametrize("reject", ["1", "0"])
def test_proxy_hop_and_origin_are_verified_separately(reject: str) -> None:
    pool = pool_manager(tls_config(reject)).connection_from_url("https://api.carto.com")
    hop = pool.proxy_config.ssl_context
    origin = pool.conn_kw["ssl_context"]
    assert hop.verify_mode == (ssl.CERT_REQUIRED if reject == "1" else ssl.CERT_NONE)
    # Origins are verified whatever NODE_TLS_REJECT_UNAUTHORIZED says.
    assert (origin.verify_mode, origin.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert origin is not hop


def test_plain_proxy_gets_no_proxy_context() -> None:
    pool = pool_manager(CONFIG).connection_from_url("https://api.carto.com")
    assert pool.proxy_config.ssl_context is None


def test_user_pool_arguments_pass_through() -> None:
    context = CONFIG.ssl_context()
    manager = pool_manager(
        CONFIG, num_pools=3, headers={"X-Test": "1"}, maxsize=4, ssl_context=context
    )
    pool = manager.connection_from_url("https://api.carto.com")
    assert (pool.pool.maxsize, pool.conn_kw["ssl_context"]) == (4, context)
    assert manager.headers == {"X-Test": "1"}


@pytest.mark.parametrize(
    "argument",
    [
        {"proxy_url": "http://other:3128"},
        {"proxy_headers": {"Proxy-Authorization": "Basic eDp5"}},
        {"proxy_ssl_context": ssl.create_default_context()},
        {"use_forwarding_for_https": True},
        {"_proxy": "http://other:3128"},
        {"ca_certs": "/etc/ssl/certs/ca-certificates.crt"},
        {"ca_cert_dir": "/etc/ssl/certs"},
        {"cert_reqs": "CERT_NONE"},
        {"cert_reqs": ssl.CERT_NONE},
        {"assert_hostname": False},
        {"ssl_context": ssl._create_unverified_context()},
    ],
    ids=lambda argument: f"{next(iter(argument))}",
)
def test_refuses_arguments_that_defeat_the_routing(argument: dict[str, Any]) -> None:
    name = next(iter(argument))
    with pytest.raises(ConfigError, match=rf"\({name}=") as refused:
        pool_manager(CONFIG, **argument)
    assert refused.value.code == "CP400"


def test_connection_from_host_is_routed() -> None:
    with record_routes() as routes:
        pool = pool_manager(CONFIG).connection_from_host("direct.test", 443, "https")
    assert pool.proxy is None
    assert [(route.action, route.target.authority) for route in routes] == [
        (Action.DIRECT, "direct.test:443")
    ]


@pytest.mark.parametrize(
    ("host", "scheme", "proxy", "pool_host"),
    [
        ("api.example.com", "https", "http://proxy.test:3128", "api.example.com"),
        ("api.example.com", "http", "http://plain-only.test:8080", "plain-only.test"),
        ("direct.test", "https", None, "direct.test"),
        ("10.1.2.3", "http", None, "10.1.2.3"),
    ],
)
def test_connection_from_context_and_pool_key_are_routed(
    host: str, scheme: str, proxy: str | None, pool_host: str
) -> None:
    # urllib3's own methods would hand out a direct pool whatever the route.
    manager = pool_manager(CONFIG)
    context = {**manager.connection_pool_kw, "scheme": scheme, "host": host, "port": 443}
    key = manager.key_fn_by_scheme[scheme](context)
    with record_routes() as routes:
        from_context = manager.connection_from_context(dict(context))
        from_key = manager.connection_from_pool_key(key, request_context=dict(context))
    assert from_key is from_context
    assert (None if from_context.proxy is None else from_context.proxy.url) == proxy
    assert from_context.host == pool_host
    assert [route.target.authority for route in routes] == [f"{host}:443"] * 2
    assert len(manager.pools) == 0  # the router's own pools stay empty


def test_urls_without_a_scheme_are_routed_as_http() -> None:
    # urllib3 sends them as http (with a FutureWarning); the route must agree.
    assert pool_manager(CONFIG).route("api.carto.com/x").proxy is CONFIG.http_proxy


URLS = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http", "https", "HTTPS", "ws", "x+y", "1http", "h.t", ""]),
        st.sampled_from(["://", ":/", "//", ":", ""]),
        st.sampled_from(["", "user@", "u:pw@", "@", "a@b@"]),
        st.text(alphabet="aZ.-_[]:019%\\@ /?#", max_size=12),
        st.text(alphabet="/?#\\@:.a", max_size=6),
    ),
)


@given(URLS)
def test_the_cached_origin_is_what_urllib3_parses(url: str) -> None:
    # The fast path must never route a different host than urllib3 connects to.
    def outcome(parse: Any) -> object:
        try:
            return parse(url)
        except ValueError as error:  # LocationParseError
            return type(error)

    assert outcome(request_origin) == outcome(_parse_origin)


def test_clear_empties_every_inner_manager() -> None:
    manager = pool_manager(CONFIG)
    for url in ("https://api.carto.com", "http://api.carto.com", "https://direct.test"):
        manager.connection_from_url(url)
    manager.clear()
    assert len(manager._inner.direct.pools) == 0
    assert all(len(inner.pools) == 0 for inner in manager._inner.proxied.values())


def test_old_urllib3_is_refused_with_an_https_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before urllib3 2.8 the origin's cert_reqs leaked into the proxy hop (urllib3#3472).
    monkeypatch.setattr(urllib3, "__version__", "2.7.0")
    with pytest.raises(ConfigError, match=r"urllib3>=2\.8") as refused:
        pool_manager(tls_config())
    assert (refused.value.variable, refused.value.code) == ("HTTPS_PROXY", "CP401")
    pool_manager(CONFIG)  # an http:// proxy is fine with any urllib3 2.x


def test_config_none_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://from-env.test:3128")
    pool = pool_manager().connection_from_url("https://carto.com")
    assert pool.proxy is not None
    assert pool.proxy.url == "http://from-env.test:3128"


# -- integration: the shared Squid cases ----------------------------------------------------------


class _Fetcher(Fetcher):
    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        self.manager = pool_manager(
            config, timeout=urllib3.Timeout(connect=timeout, read=timeout), **options
        )

    def get(self, url: str) -> Reply:
        response = self.manager.request("GET", url)
        return Reply(response.status, response.json())

    def close(self) -> None:
        self.manager.clear()


class Urllib3Driver(Driver):
    name = "urllib3"
    error = urllib3.exceptions.HTTPError
    attempts = 4  # PoolManager's default Retry(3)
    fetcher = _Fetcher
    warns_unverified_proxy = True


class TestUrllib3ThroughSquid(HTTPAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return Urllib3Driver()


class TestUrllib3Trickled(TrickleCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return Urllib3Driver()


class TestUrllib3Observed(ObservedAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return Urllib3Driver()

    def route_for(self, fetcher: Fetcher, url: str) -> Route:
        assert isinstance(fetcher, _Fetcher)
        return urllib3_route_for(fetcher.manager, url)


# -- integration: urllib3's own cases -------------------------------------------------------------


@pytest.mark.integration
def test_a_pool_from_its_context_sends_through_the_route(
    pki: PKI, origins: Origins, fake_dns: FakeDNS
) -> None:
    with RecordingProxy(timeout=TIMEOUT) as proxy:
        config = make_config(proxy.url, pki.origin_ca_path, no_proxy="localhost")
        manager = pool_manager(config, timeout=TIMEOUT, retries=False)
        replies = []
        for host in ("127.0.0.1", "localhost"):
            context = {"scheme": "https", "host": host, "port": origins.https.port}
            pool = manager.connection_from_context({**manager.connection_pool_kw, **context})
            replies.append(pool.urlopen("GET", f"/context/{host}").json()["path"])
        manager.clear()
        tunnels = [(record.host, record.port) for record in proxy.tunnels]
    assert replies == ["/context/127.0.0.1", "/context/localhost"]
    assert tunnels == [("127.0.0.1", origins.https.port)]  # localhost went direct


def _interrupt_main_thread(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.integration
def test_an_interrupted_handshake_leaves_no_descriptor_open() -> None:
    # A proxy that reads the CONNECT, then interrupts the client (as Ctrl-C would) while it
    # waits for the answer: the deadline's duplicated socket must be closed all the same.
    listener = socket.create_server(("127.0.0.1", 0))
    main = threading.get_ident()

    def proxy() -> None:
        with contextlib.suppress(OSError), listener.accept()[0] as client:
            client.settimeout(TIMEOUT)
            client.recv(4096)  # the CONNECT: the client now blocks for the answer
            signal.pthread_kill(main, signal.SIGUSR1)
            client.recv(1)  # until the client goes

    previous = signal.signal(signal.SIGUSR1, _interrupt_main_thread)
    thread = threading.Thread(target=proxy, daemon=True)
    try:
        config = ProxyConfig.from_env(
            environ={"HTTPS_PROXY": f"http://127.0.0.1:{listener.getsockname()[1]}"}
        )
        manager = pool_manager(config, timeout=TIMEOUT, retries=False)
        before = _open_descriptors()
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            manager.request("GET", "https://a.test/")  # urllib3 closes the connection
        thread.join(TIMEOUT)  # the proxy's side is closed too
        assert _open_descriptors() == before
    finally:
        signal.signal(signal.SIGUSR1, previous)
        listener.close()
        thread.join(TIMEOUT)


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))
