"""carto_proxy.adapters.httpx: unit tests (no network) and the shared Squid integration cases."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import pytest

from carto_proxy import Action, ConfigError, ProxyConfig, Route, Rule
from carto_proxy.adapters import httpx as carto_httpx
from carto_proxy.testing import record_routes
from tests.adapters.http_cases import (
    CONFIG,
    Driver,
    Fetcher,
    HTTPAdapterCases,
    Reply,
    make_hostile,
)
from tests.adapters.observe_cases import ObservedAdapterCases
from tests.adapters.trickle_cases import TrickleCases

PLAIN_PROXY = "http://proxy.test:3128"  # CONFIG's HTTPS_PROXY
TLS_PROXY = "https://tls-proxy.test:3129"


# -- unit tests: what the adapter hands httpx ---------------------------------------------------


class FakeTransport(httpx.BaseTransport):
    """Stands in for httpx.HTTPTransport: records its arguments, answers with its proxy."""

    built: ClassVar[list[FakeTransport]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        proxy = kwargs.get("proxy")
        self.proxy = None if proxy is None else str(proxy.url)
        self.closed = False
        self.handler: Callable[[httpx.Request], httpx.Response] | None = None
        FakeTransport.built.append(self)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.handler is not None:
            return self.handler(request)
        return httpx.Response(200, json={"proxy": self.proxy, "url": str(request.url)})

    def close(self) -> None:
        self.closed = True


class FakeAsyncTransport(httpx.AsyncBaseTransport):
    built: ClassVar[list[FakeAsyncTransport]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        proxy = kwargs.get("proxy")
        self.proxy = None if proxy is None else str(proxy.url)
        FakeAsyncTransport.built.append(self)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"proxy": self.proxy})


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[FakeTransport]:
    """Replace httpx's transports with recording fakes; return the list of sync ones built."""
    FakeTransport.built = []
    FakeAsyncTransport.built = []
    monkeypatch.setattr(httpx, "HTTPTransport", FakeTransport)
    monkeypatch.setattr(httpx, "AsyncHTTPTransport", FakeAsyncTransport)
    return FakeTransport.built


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> None:
    make_hostile(monkeypatch)


def by_proxy(fakes: list[FakeTransport]) -> dict[str | None, FakeTransport]:
    return {fake.proxy: fake for fake in fakes}


@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.carto.com/v3", "http://proxy.test:3128"),
        ("http://api.carto.com/v3", "http://plain-only.test:8080"),
        ("https://direct.test/x", None),
        ("https://sub.direct.test:8443/x", None),
        ("http://10.1.2.3/x", None),
        ("https://xy12345.eu-central-1.snowflakecomputing.com", "http://proxy.test:3128"),
    ],
)
def test_each_request_follows_the_config_not_the_environment(
    fakes: list[FakeTransport], url: str, expected: str | None
) -> None:
    # The environment says HTTPS_PROXY=http://127.0.0.1:9 and NO_PROXY=*; the config wins.
    with carto_httpx.client(CONFIG) as client:
        assert client.get(url).json()["proxy"] == expected


def test_hands_httpx_one_transport_per_proxy_with_the_configs_tls(
    fakes: list[FakeTransport],
) -> None:
    config = ProxyConfig.from_env(
        environ={"HTTP_PROXY": PLAIN_PROXY, "HTTPS_PROXY": PLAIN_PROXY, "NO_PROXY": "x.test"}
    )
    carto_httpx.client(config, http2=False, limits=httpx.Limits(max_connections=7))
    assert sorted(map(str, by_proxy(fakes))) == ["None", PLAIN_PROXY]  # shared proxy: 1 pool
    for fake in fakes:
        assert fake.kwargs["trust_env"] is False
        assert fake.kwargs["limits"].max_connections == 7
        context = fake.kwargs["verify"]
        assert isinstance(context, ssl.SSLContext)
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    # httpcore refuses a proxy ssl_context for an http:// proxy.
    assert by_proxy(fakes)[PLAIN_PROXY].kwargs["proxy"].ssl_context is None


@pytest.mark.parametrize("reject", ["1", "0"])
def test_tls_proxy_hop_context_follows_node_tls_reject_unauthorized(
    fakes: list[FakeTransport], reject: str
) -> None:
    config = ProxyConfig.from_env(
        environ={"HTTPS_PROXY": TLS_PROXY, "NODE_TLS_REJECT_UNAUTHORIZED": reject}
    )
    carto_httpx.client(config)
    proxied = by_proxy(fakes)[TLS_PROXY]
    hop = proxied.kwargs["proxy"].ssl_context
    origin = proxied.kwargs["verify"]
    assert hop.verify_mode == (ssl.CERT_REQUIRED if reject == "1" else ssl.CERT_NONE)
    assert hop.check_hostname is (reject == "1")
    # Origins are verified whatever NODE_TLS_REJECT_UNAUTHORIZED says.
    assert (origin.verify_mode, origin.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_a_verifying_context_is_used_for_origins(fakes: list[FakeTransport]) -> None:
    context = CONFIG.ssl_context()
    carto_httpx.client(CONFIG, verify=context)
    assert all(fake.kwargs["verify"] is context for fake in fakes)


@pytest.mark.parametrize("build", [carto_httpx.client, carto_httpx.async_client])
@pytest.mark.parametrize(
    "argument",
    [
        {"proxy": "http://other:3128"},
        {"proxies": {"all://": "http://other:3128"}},
        {"mounts": {"all://": None}},
        {"transport": httpx.MockTransport(lambda request: httpx.Response(200))},
        {"uds": "/tmp/socket"},
        {"verify": False},
        {"verify": "/etc/ssl/certs/ca-certificates.crt"},
        {"verify": ssl._create_unverified_context()},
        {"trust_env": True},
        {"cert": "/tmp/client.pem"},
    ],
    ids=lambda argument: next(iter(argument)),
)
def test_refuses_arguments_that_defeat_the_routing(
    build: Callable[..., Any], argument: dict[str, Any]
) -> None:
    name = next(iter(argument))
    with pytest.raises(ConfigError, match=rf"\({name}=") as refused:
        build(CONFIG, **argument)
    assert refused.value.code == "CP400"


@pytest.mark.parametrize("factory", [carto_httpx.transport, carto_httpx.async_transport])
def test_transports_refuse_unverified_origins(factory: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="verify="):
        factory(CONFIG, verify=False)


def test_trust_env_is_off() -> None:
    assert carto_httpx.client(CONFIG).trust_env is False
    assert carto_httpx.async_client(CONFIG).trust_env is False
    assert carto_httpx.client(CONFIG, trust_env=False).trust_env is False


def test_config_none_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, fakes: list[FakeTransport]
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://from-env.test:3128")
    with carto_httpx.client() as client:
        assert client.get("https://carto.com").json()["proxy"] == "http://from-env.test:3128"


def test_user_arguments_reach_the_client(fakes: list[FakeTransport]) -> None:
    seen: list[str] = []
    client = carto_httpx.client(
        CONFIG,
        timeout=3.5,
        headers={"X-Test": "1"},
        base_url="https://api.carto.com",
        event_hooks={"request": [lambda request: seen.append(str(request.url))]},
    )
    response = client.get("/v3/maps")
    assert response.request.headers["X-Test"] == "1"
    assert client.timeout == httpx.Timeout(3.5)
    assert seen == ["https://api.carto.com/v3/maps"]


def test_redirects_are_routed_again_at_every_hop(fakes: list[FakeTransport]) -> None:
    client = carto_httpx.client(CONFIG, follow_redirects=True)
    proxied = by_proxy(fakes)[PLAIN_PROXY]
    proxied.handler = lambda request: httpx.Response(
        302, headers={"Location": "https://direct.test/landed"}
    )
    with record_routes() as routes:
        response = client.get("https://api.carto.com/start")
    assert response.json() == {"proxy": None, "url": "https://direct.test/landed"}
    assert [(route.action, route.target.host) for route in routes] == [
        (Action.PROXY, "api.carto.com"),
        (Action.DIRECT, "direct.test"),
    ]


def test_errors_say_which_route_was_taken(fakes: list[FakeTransport]) -> None:
    client = carto_httpx.client(CONFIG)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    by_proxy(fakes)[PLAIN_PROXY].handler = refuse
    with pytest.raises(httpx.ConnectError) as failure:
        client.get("https://api.carto.com")
    message = str(failure.value)
    assert message.startswith("[Errno 111] Connection refused [carto_proxy: ")
    assert "through the proxy http://proxy.test:3128 (HTTPS_PROXY)" in message
    assert isinstance(failure.value.__cause__, httpx.ConnectError)
    assert failure.value.request.url == "https://api.carto.com"


def test_close_closes_every_inner_transport(fakes: list[FakeTransport]) -> None:
    carto_httpx.client(CONFIG).close()
    assert len(fakes) == 3
    assert all(fake.closed for fake in fakes)


def test_async_client_routes_each_request(fakes: list[FakeTransport]) -> None:
    async def fetch() -> list[str | None]:
        async with carto_httpx.async_client(CONFIG) as client:
            urls = ("https://api.carto.com", "https://direct.test", "http://api.carto.com")
            return [(await client.get(url)).json()["proxy"] for url in urls]

    assert asyncio.run(fetch()) == [PLAIN_PROXY, None, "http://plain-only.test:8080"]
    assert all(fake.kwargs["trust_env"] is False for fake in FakeAsyncTransport.built)


def test_transport_reports_routes() -> None:
    request = httpx.Request("GET", "https://user:secret@xy12345.snowflakecomputing.com/q")
    route = carto_httpx.transport(CONFIG).route(request)
    assert (route.action, route.rule) == (Action.PROXY, Rule.PROXY)
    assert route.target.host == "xy12345.snowflakecomputing.com"


# -- integration: the shared Squid cases ----------------------------------------------------------


class _SyncFetcher(Fetcher):
    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        self.client = carto_httpx.client(config, timeout=timeout, follow_redirects=True, **options)

    def get(self, url: str) -> Reply:
        response = self.client.get(url)
        return Reply(response.status_code, response.json())

    def close(self) -> None:
        self.client.close()


class _AsyncFetcher(Fetcher):
    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = carto_httpx.async_client(
            config, timeout=timeout, follow_redirects=True, **options
        )

    def get(self, url: str) -> Reply:
        response = self.loop.run_until_complete(self.client.get(url))
        return Reply(response.status_code, response.json())

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.aclose())
        finally:
            self.loop.close()


class SyncDriver(Driver):
    name = "httpx-sync"
    fetcher = _SyncFetcher
    error = httpx.HTTPError


class AsyncDriver(Driver):
    name = "httpx-async"
    fetcher = _AsyncFetcher
    error = httpx.HTTPError


class TestHttpxThroughSquid(HTTPAdapterCases):
    @pytest.fixture(params=[SyncDriver(), AsyncDriver()], ids=["sync", "async"])
    def driver(self, request: pytest.FixtureRequest) -> Driver:
        return request.param  # type: ignore[no-any-return]


class TestHttpxTrickled(TrickleCases):
    @pytest.fixture(params=[SyncDriver(), AsyncDriver()], ids=["sync", "async"])
    def driver(self, request: pytest.FixtureRequest) -> Driver:
        return request.param  # type: ignore[no-any-return]


class TestHttpxObserved(ObservedAdapterCases):
    @pytest.fixture(params=[SyncDriver(), AsyncDriver()], ids=["sync", "async"])
    def driver(self, request: pytest.FixtureRequest) -> Driver:
        return request.param  # type: ignore[no-any-return]

    def route_for(self, fetcher: Fetcher, url: str) -> Route:
        assert isinstance(fetcher, _SyncFetcher | _AsyncFetcher)
        return carto_httpx.route_for(fetcher.client, url)
