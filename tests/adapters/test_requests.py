"""carto_proxy.adapters.requests: unit tests (no network) and the shared Squid integration cases."""

from __future__ import annotations

import pickle
import ssl
from typing import Any

import pytest
import requests
import requests.adapters
import urllib3

from carto_proxy import ConfigError, ProxyConfig, Route
from carto_proxy.adapters.requests import RoutingAdapter, mount, route_for, session
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

TLS_CONFIG = ProxyConfig.from_env(
    environ={"HTTPS_PROXY": "https://tls-proxy.test:3129", "NODE_TLS_REJECT_UNAUTHORIZED": "0"}
)


# -- unit tests -----------------------------------------------------------------------------------


class Sent:
    """What RoutingAdapter handed to requests' own HTTPAdapter.send."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        self.calls.append({"url": request.url, "headers": dict(request.headers), **kwargs})
        response = requests.Response()
        response.status_code = 200
        response.request = request
        response.url = request.url or ""
        return response


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    recorder = Sent()

    def send(adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        return recorder(adapter, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return recorder


@pytest.mark.parametrize(
    ("url", "proxies"),
    [
        ("https://api.carto.com/v3", {"all": "http://proxy.test:3128"}),
        ("http://api.carto.com/v3", {"all": "http://plain-only.test:8080"}),
        ("https://direct.test/x", {}),
        ("https://b.direct.test:8443/x", {}),
        ("http://10.1.1.1/x", {}),
    ],
)
def test_each_request_follows_the_config_not_the_environment_or_session(
    monkeypatch: pytest.MonkeyPatch, sent: Sent, url: str, proxies: dict[str, str]
) -> None:
    make_hostile(monkeypatch)
    http = session(CONFIG)
    http.proxies = {"https": "http://127.0.0.1:9", "http": "http://127.0.0.1:9"}
    http.get(url, proxies={"all": "http://127.0.0.1:9"})
    assert sent.calls[-1]["proxies"] == proxies
    assert sent.calls[-1]["verify"] is True  # REQUESTS_CA_BUNDLE was not picked up


def test_mount_routes_an_existing_session(sent: Sent) -> None:
    http = requests.Session()
    adapter = mount(http, CONFIG)
    assert http.get_adapter("https://x.test") is adapter
    assert http.get_adapter("http://x.test") is adapter
    assert http.trust_env is False
    http.get("https://api.carto.com")
    assert sent.calls[-1]["proxies"] == {"all": "http://proxy.test:3128"}


def test_mount_refuses_a_session_with_a_more_specific_adapter() -> None:
    http = requests.Session()
    http.mount("https://api.carto.com/", requests.adapters.HTTPAdapter())
    with pytest.raises(ConfigError, match=r"https://api\.carto\.com/"):
        mount(http, CONFIG)


def test_session_trust_env_is_off() -> None:
    assert session(CONFIG).trust_env is False


@pytest.mark.parametrize("verify", [False, "/etc/ssl/certs/ca-certificates.crt"])
def test_refuses_verify_that_would_replace_origin_trust(sent: Sent, verify: object) -> None:
    http = session(CONFIG)
    with pytest.raises(ConfigError, match=r"verify=") as refused:
        http.get("https://api.carto.com", verify=verify)
    assert refused.value.code == "CP400"
    assert sent.calls == []
    http.verify = verify  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"verify="):
        http.get("https://api.carto.com")


def test_proxy_authorization_is_never_sent(sent: Sent) -> None:
    # requests re-adds it on redirects from credentials in Session.proxies (CVE-2023-32681).
    session(CONFIG).get("https://direct.test", headers={"Proxy-Authorization": "Basic eDp5"})
    assert "Proxy-Authorization" not in sent.calls[-1]["headers"]


@pytest.mark.parametrize("reject", ["1", "0"])
def test_proxy_hop_context_goes_through_proxy_manager_for(reject: str) -> None:
    config = ProxyConfig.from_env(
        environ={"HTTPS_PROXY": "https://tls.test:3129", "NODE_TLS_REJECT_UNAUTHORIZED": reject}
    )
    adapter = RoutingAdapter(config)
    manager = adapter.proxy_manager_for("https://tls.test:3129")
    hop = manager.proxy_config.ssl_context
    origin = manager.connection_pool_kw["ssl_context"]
    assert hop.verify_mode == (ssl.CERT_REQUIRED if reject == "1" else ssl.CERT_NONE)
    assert (origin.verify_mode, origin.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert adapter.poolmanager.connection_pool_kw["ssl_context"] is origin
    # httpcore-style refusal does not exist in urllib3, but an http proxy needs no hop context.
    assert adapter.proxy_manager_for("http://plain.test:3128").proxy_config.ssl_context is None


def test_origin_pools_keep_trust_in_the_context() -> None:
    adapter = RoutingAdapter(CONFIG)
    pool = adapter.poolmanager.connection_from_url("https://direct.test")
    adapter.cert_verify(pool, "https://direct.test", True, None)
    assert (pool.cert_reqs, pool.ca_certs, pool.ca_cert_dir) == ("CERT_REQUIRED", None, None)


def test_adapter_pickles(sent: Sent) -> None:
    adapter = pickle.loads(pickle.dumps(RoutingAdapter(TLS_CONFIG, max_retries=2)))
    assert adapter.carto_proxy_config == TLS_CONFIG
    assert adapter.max_retries.total == 2
    hop = adapter.proxy_manager_for("https://tls-proxy.test:3129").proxy_config.ssl_context
    assert hop.verify_mode == ssl.CERT_NONE


def test_session_passes_adapter_options() -> None:
    adapter = session(CONFIG, max_retries=5, pool_maxsize=3).get_adapter("https://x.test")
    assert isinstance(adapter, RoutingAdapter)
    assert (adapter.max_retries.total, adapter._pool_maxsize) == (5, 3)


def test_old_urllib3_is_refused_with_an_https_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib3, "__version__", "2.6.3")
    with pytest.raises(ConfigError, match=r"urllib3>=2\.8"):
        session(TLS_CONFIG)
    session(CONFIG)


def test_config_none_reads_the_environment(monkeypatch: pytest.MonkeyPatch, sent: Sent) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://from-env.test:3128")
    session().get("https://carto.com")
    assert sent.calls[-1]["proxies"] == {"all": "http://from-env.test:3128"}


# -- integration: the shared Squid cases ----------------------------------------------------------


class _Fetcher(Fetcher):
    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        self.session = session(config, **options)
        self.timeout = timeout

    def get(self, url: str) -> Reply:
        response = self.session.get(url, timeout=self.timeout)
        return Reply(response.status_code, response.json())

    def close(self) -> None:
        self.session.close()


class RequestsDriver(Driver):
    name = "requests"
    error = requests.RequestException
    fetcher = _Fetcher
    warns_unverified_proxy = True  # urllib3's InsecureRequestWarning


class TestRequestsThroughSquid(HTTPAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return RequestsDriver()


class TestRequestsTrickled(TrickleCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return RequestsDriver()


class TestRequestsObserved(ObservedAdapterCases):
    @pytest.fixture
    def driver(self) -> Driver:
        return RequestsDriver()

    def route_for(self, fetcher: Fetcher, url: str) -> Route:
        assert isinstance(fetcher, _Fetcher)
        return route_for(fetcher.session, url)
