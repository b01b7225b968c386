"""carto_proxy.adapters.aiohttp: what it refuses, and real requests through Squid and the kit's
RecordingProxy (the shared cases of http_cases and observe_cases, and aiohttp's own)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

aiohttp = pytest.importorskip("aiohttp")

from yarl import URL  # noqa: E402

from carto_proxy import Action, ConfigError, ProxyConfig, Route, RouteEvent, observe  # noqa: E402
from carto_proxy.adapters import aiohttp as carto_aiohttp  # noqa: E402
from carto_proxy.adapters._aiohttp_tls import (  # noqa: E402
    ProxyHopContext,
    check_tls_in_tls,
)
from carto_proxy.testing import RecordingProxy, assert_tunnelled, record_routes  # noqa: E402
from tests.adapters.http_cases import (  # noqa: E402
    CONFIG,
    TIMEOUT,
    Driver,
    Fetcher,
    HTTPAdapterCases,
    Reply,
    error_text,
    make_config,
    make_hostile,
    token,
)
from tests.adapters.observe_cases import ObservedAdapterCases  # noqa: E402
from tests.adapters.trickle_cases import TrickleCases  # noqa: E402
from tests.support.names import API_HOST, DENIED_HOST, DIRECT_HOST  # noqa: E402
from tests.support.origins import Origins  # noqa: E402
from tests.support.pki import PKI  # noqa: E402
from tests.support.resolver import FakeDNS  # noqa: E402
from tests.support.squid import Squid, SquidLog  # noqa: E402

_T = TypeVar("_T")

TLS_PROXY = ProxyConfig.from_env(
    environ={"HTTPS_PROXY": "https://tls-proxy.test:3129", "NODE_TLS_REJECT_UNAUTHORIZED": "0"}
)


def run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine built by *make* in a new event loop."""

    async def main() -> _T:
        return await make()

    return asyncio.run(main())


def timeouts(seconds: float) -> Any:
    """Connect and read timeouts of *seconds* and no total, like httpx's ``timeout=``."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


# -- unit tests: what the adapter refuses and hands aiohttp --------------------------------------


@pytest.mark.parametrize(
    "argument",
    [
        {"proxy": "http://other:3128"},
        {"proxy_auth": "user"},
        {"request_class": object},
        {"trust_env": True},
        {"connector": "a connector built elsewhere"},
    ],
    ids=lambda argument: next(iter(argument)),
)
def test_session_refuses_arguments_that_defeat_the_routing(argument: dict[str, Any]) -> None:
    name = next(iter(argument))
    if name == "connector":

        async def build() -> None:
            argument["connector"] = aiohttp.TCPConnector()
            try:
                carto_aiohttp.session(CONFIG, **argument)
            finally:
                await argument["connector"].close()

        with pytest.raises(ConfigError, match=r"\(connector=") as refused:
            run(build)
    else:
        with pytest.raises(ConfigError, match=rf"\({name}=") as refused:
            carto_aiohttp.session(CONFIG, **argument)
    assert refused.value.code == "CP400"


@pytest.mark.parametrize(
    "argument",
    [
        {"ssl": False},
        {"verify_ssl": False},
        {"ssl": ssl.create_default_context()},
        {"ssl_context": ssl.create_default_context()},
        {"fingerprint": b"\0" * 32},
    ],
    ids=lambda argument: next(iter(argument)),
)
def test_connector_refuses_its_own_tls_settings(argument: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="bypass") as refused:
        carto_aiohttp.connector(**argument)
    assert refused.value.code == "CP400"


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "1", True])
def test_proxy_handshake_timeout_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ValueError, match="proxy_handshake_timeout"):
        carto_aiohttp.connector(proxy_handshake_timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argument",
    [
        {"proxy": "http://127.0.0.1:9"},
        {"ssl": False},
        {"verify_ssl": False},
        {"ssl": ssl.create_default_context()},
        {"fingerprint": b"\0" * 32},
    ],
    ids=lambda argument: next(iter(argument)),
)
def test_requests_refuse_arguments_that_defeat_the_routing(argument: dict[str, Any]) -> None:
    async def fetch() -> None:
        async with carto_aiohttp.session(CONFIG) as http:
            await http.get("https://api.carto.com/", **argument)

    deprecated = "verify_ssl" in argument or "fingerprint" in argument
    warned = pytest.warns(DeprecationWarning, match="deprecated")
    with (
        warned if deprecated else contextlib.nullcontext(),
        pytest.raises(ConfigError) as refused,
    ):
        run(fetch)
    assert refused.value.code == "CP400"


def test_trust_env_is_off_and_route_for_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    make_hostile(monkeypatch)

    async def build() -> tuple[bool, list[Route]]:
        async with carto_aiohttp.session(CONFIG, base_url="https://api.carto.com") as http:
            with record_routes() as seen:
                asked = [
                    carto_aiohttp.route_for(http, url)
                    for url in ("/v3/maps", "https://direct.test/x", "http://user:pw@10.1.2.3/")
                ]
            assert list(seen) == []  # route_for tells no one
            return http.trust_env, asked

    trust_env, asked = run(build)
    assert trust_env is False
    assert [(r.action, r.target.host, str(r.proxy)) for r in asked] == [
        (Action.PROXY, "api.carto.com", "http://proxy.test:3128"),
        (Action.DIRECT, "direct.test", "None"),
        (Action.DIRECT, "10.1.2.3", "None"),
    ]


def test_route_for_refuses_other_sessions() -> None:
    async def ask() -> None:
        async with aiohttp.ClientSession() as plain:
            carto_aiohttp.route_for(plain, "https://carto.com")

    with pytest.raises(TypeError, match="session built by carto_proxy"):
        run(ask)
    with pytest.raises(TypeError):
        carto_aiohttp.route_for(object(), "https://carto.com")  # type: ignore[arg-type]


def test_tls_in_tls_needs_python_3_11() -> None:
    with pytest.raises(ConfigError, match=r"Python 3\.11") as refused:
        check_tls_in_tls(TLS_PROXY, (3, 10))
    assert (refused.value.variable, refused.value.code) == ("HTTPS_PROXY", "CP403")
    check_tls_in_tls(TLS_PROXY, (3, 11))
    check_tls_in_tls(CONFIG, (3, 10))  # an http:// proxy needs no TLS in TLS


def test_unverified_proxy_context_verifies_every_other_server_name() -> None:
    async def contexts() -> list[Any]:
        async with carto_aiohttp.session(TLS_PROXY) as http:
            requests = [
                http._request_class(  # what aiohttp builds for each hop
                    "GET", URL(url), session=http, loop=asyncio.get_running_loop()
                )
                for url in ("https://api.carto.com/", "https://tls-proxy.test:8443/")
            ]
            return [request.ssl for request in requests]

    hop, same_host = run(contexts)
    assert isinstance(hop, ProxyHopContext)
    assert (hop.verify_mode, hop.check_hostname) == (ssl.CERT_REQUIRED, True)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    to_proxy = hop.wrap_bio(incoming, outgoing, server_hostname="TLS-Proxy.test.")
    to_origin = hop.wrap_bio(incoming, outgoing, server_hostname="api.carto.com")
    assert to_proxy.context.verify_mode == ssl.CERT_NONE
    assert to_origin.context is hop
    assert to_origin.context.verify_mode == ssl.CERT_REQUIRED
    # An origin on the proxy's own host gets a context that verifies both hops.
    assert not isinstance(same_host, ProxyHopContext)
    assert same_host.verify_mode == ssl.CERT_REQUIRED


# -- integration: the shared Squid cases -----------------------------------------------------------


class _Fetcher(Fetcher):
    """An aiohttp session driven from synchronous test code, in its own event loop."""

    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            return carto_aiohttp.session(config, timeout=timeouts(timeout), **options)

        self.session = self.loop.run_until_complete(make())

    def get(self, url: str) -> Reply:
        async def fetch() -> Reply:
            async with self.session.get(url) as response:
                return Reply(response.status, await response.json())

        return self.loop.run_until_complete(fetch())

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.session.close())
        finally:
            self.loop.close()


class AiohttpDriver(Driver):
    name = "aiohttp"
    fetcher = _Fetcher
    error = (aiohttp.ClientError, asyncio.TimeoutError)


class TestAiohttpThroughSquid(HTTPAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return AiohttpDriver()


class TestAiohttpTrickled(TrickleCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return AiohttpDriver()


class TestAiohttpObserved(ObservedAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return AiohttpDriver()

    def route_for(self, fetcher: Fetcher, url: str) -> Route:
        assert isinstance(fetcher, _Fetcher)
        return carto_aiohttp.route_for(fetcher.session, url)


# -- integration: aiohttp's own cases -------------------------------------------------------------


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> None:
    make_hostile(monkeypatch)


@pytest.fixture
def recording_proxy() -> Iterator[RecordingProxy]:
    with RecordingProxy(tls=True, timeout=TIMEOUT) as proxy:
        yield proxy


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
def test_untrusted_tls_proxy_works_with_node_tls_reject_unauthorized_0(
    recording_proxy: RecordingProxy, pki: PKI, origins: Origins, fake_dns: FakeDNS
) -> None:
    # The RecordingProxy's own CA is trusted nowhere; the origins' CA is.
    config = make_config(recording_proxy.url, pki.origin_ca_path, verify_proxy=False)
    prefix = token(AiohttpDriver())
    with AiohttpDriver().client(config) as client:
        trusted = client.get(origins.https.url_for("127.0.0.1", f"{prefix}/ok"))
        # A ClientConnectorCertificateError, or on CPython 3.11.7 a ClientConnectionError
        # caused by asyncio's own TypeError in the TLS-in-TLS error path (SSLProtocol._abort).
        with pytest.raises(aiohttp.ClientConnectionError) as refused:
            client.get(origins.untrusted.url_for("127.0.0.1", f"{prefix}/untrusted"))
    assert (trusted.status, trusted.body["path"]) == (200, f"{prefix}/ok")
    assert "CERTIFICATE_VERIFY_FAILED" in error_text(refused.value)
    assert "[carto_proxy: https://127.0.0.1:" in str(refused.value)  # names the route
    tunnels = [record.port for record in recording_proxy.tunnels]
    assert tunnels == [origins.https.port, origins.untrusted.port]
    assert recording_proxy.tls_errors == []  # the proxy hop was never the one that failed
    assert origins.untrusted.requests == [] or all(
        not r.path.startswith(prefix) for r in origins.untrusted.requests
    )

    # Without NODE_TLS_REJECT_UNAUTHORIZED=0 the same proxy is refused.
    verified = make_config(recording_proxy.url, pki.origin_ca_path)
    with AiohttpDriver().client(verified) as client, pytest.raises(aiohttp.ClientError) as failed:
        client.get(origins.https.url_for("127.0.0.1", f"{prefix}/verified"))
    assert "CERTIFICATE_VERIFY_FAILED" in error_text(failed.value)


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize(("fault", "status"), [("refuse", 403), ("fail_upstream", 502)])
def test_proxy_refusals_keep_their_status_and_name_the_route(
    pki: PKI, origins: Origins, fake_dns: FakeDNS, fault: str, status: int
) -> None:
    with RecordingProxy(timeout=TIMEOUT) as proxy:
        getattr(proxy, fault)("127.0.0.1")
        config = make_config(proxy.url, pki.origin_ca_path)
        with (
            AiohttpDriver().client(config) as client,
            pytest.raises(aiohttp.ClientHttpProxyError) as failure,
        ):
            client.get(origins.https.url_for("127.0.0.1", "/refused"))
    assert failure.value.status == status
    assert f"through the proxy {proxy.url} (HTTPS_PROXY), rule proxy]" in str(failure.value)


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
def test_squid_denial_is_a_proxy_error(
    squid: Squid, squid_log: SquidLog, pki: PKI, origins: Origins, fake_dns: FakeDNS
) -> None:
    config = make_config(squid.http_url, pki.origin_ca_path)
    with (
        AiohttpDriver().client(config) as client,
        pytest.raises(aiohttp.ClientHttpProxyError) as failure,
    ):
        client.get(origins.https.url_for(DENIED_HOST, "/denied"))
    assert failure.value.status == 403
    assert f"[carto_proxy: https://{DENIED_HOST}:{origins.https.port} through" in str(failure.value)
    assert not fake_dns.resolved(DENIED_HOST)


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
def test_slow_proxy_fails_within_the_timeout(pki: PKI, origins: Origins, fake_dns: FakeDNS) -> None:
    with RecordingProxy(timeout=TIMEOUT) as proxy:
        proxy.add_latency(5.0)
        config = make_config(proxy.url, pki.origin_ca_path)
        started = time.monotonic()
        with (
            AiohttpDriver().client(config, timeout=0.5) as client,
            pytest.raises(aiohttp.ServerTimeoutError) as failure,  # ConnectionTimeoutError
        ):
            client.get(origins.https.url_for("127.0.0.1", "/slow"))
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2.0
    # aiohttp's own ConnectionTimeoutError, caused by the timeout that names the proxy and route.
    cause = str(failure.value.__cause__)
    assert "the proxy handshake with http://127.0.0.1:" in cause
    assert f"through the proxy {proxy.url} (HTTPS_PROXY), rule proxy]" in cause


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
@pytest.mark.parametrize("tls", [False, True], ids=["plain-proxy", "tls-proxy"])
def test_hundred_concurrent_requests(
    squid: Squid, squid_log: SquidLog, pki: PKI, origins: Origins, fake_dns: FakeDNS, tls: bool
) -> None:
    proxy = squid.https_url if tls else squid.http_url
    config = make_config(proxy, pki.bundle_path, no_proxy=DIRECT_HOST)
    prefix = token(AiohttpDriver())
    urls = [
        origins.https.url_for(API_HOST if index % 2 else DIRECT_HOST, f"{prefix}/{index}")
        for index in range(100)
    ]
    events: list[RouteEvent] = []

    async def fetch_all() -> list[tuple[int, str]]:
        async with carto_aiohttp.session(config, timeout=timeouts(TIMEOUT)) as http:

            async def fetch(url: str) -> tuple[int, str]:
                async with http.get(url) as response:
                    return response.status, (await response.json())["path"]

            return await asyncio.gather(*(fetch(url) for url in urls))

    with observe(events.append):
        replies = run(fetch_all)
    assert replies == [(200, f"{prefix}/{index}") for index in range(100)]
    assert sorted((e.route.action, e.route.target.host) for e in events) == sorted(
        [(Action.PROXY, API_HOST)] * 50 + [(Action.DIRECT, DIRECT_HOST)] * 50
    )
    assert not fake_dns.resolved(API_HOST)


# -- the example of docs/testing.md ("An aiohttp connector"), as written there ------------------


async def fetch_status(url: str) -> int:
    async with carto_aiohttp.session() as http, http.get(url) as response:
        return response.status


@pytest.mark.carto_proxy(origin_hosts=["api.example.com"])
def test_aiohttp_requests_go_through_the_proxy(
    carto_proxy_environ: ProxyConfig, carto_proxy_origin: Any
) -> None:
    carto_proxy_origin.reply("/v1/status", json={"ok": True})

    assert asyncio.run(fetch_status("https://api.example.com/v1/status")) == 200

    assert_tunnelled("api.example.com:443")


@pytest.mark.integration
@pytest.mark.usefixtures("hostile")
def test_user_information_never_becomes_a_cache_key(
    pki: PKI, origins: Origins, fake_dns: FakeDNS
) -> None:
    with RecordingProxy(timeout=TIMEOUT) as proxy:
        config = make_config(proxy.url, pki.origin_ca_path)
        url = origins.https.url_for("127.0.0.1", "/userinfo").replace("://", "://alice:pw@", 1)

        async def fetch() -> tuple[int, list[str]]:
            async with carto_aiohttp.session(config, timeout=timeouts(TIMEOUT)) as http:
                assert carto_aiohttp.route_for(http, url).proxy is not None
                async with http.get(url) as response:
                    status = response.status
                return status, [str(key) for key in carto_aiohttp._session_routing[http]._by_origin]

        status, decided = run(fetch)
        tunnels = [record.port for record in proxy.tunnels]
    assert status == 200
    assert tunnels == [origins.https.port]
    cached = [*decided, *(str(key) for key in config._routes)]
    assert f"https://127.0.0.1:{origins.https.port}" in decided
    assert not [key for key in cached if "alice" in key or "pw" in key]
