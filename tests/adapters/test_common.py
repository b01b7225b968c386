"""carto_proxy.adapters._common, as each adapter uses it: a missing library names its extra,
and every proxy a route can name has its inner client."""

from __future__ import annotations

import importlib
import sys

import pytest

from carto_proxy import MissingExtraError, ProxyConfig, ProxyURL
from carto_proxy.adapters._common import InnerClients


@pytest.mark.parametrize(
    ("adapter", "library", "extra"),
    [
        ("httpx", "httpx", "httpx"),
        ("requests", "requests", "requests"),
        ("urllib3", "urllib3", "urllib3"),
        ("grpc", "grpc", "grpc"),
        ("bigquery", "google.cloud.bigquery", "bigquery"),
        ("snowflake", "snowflake.connector", "snowflake"),
        ("pandas_gbq", "pandas_gbq", "pandas-gbq"),
    ],
)
def test_missing_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, adapter: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # makes `import <library>` fail
    # Import the adapter afresh (monkeypatch puts an already imported one back afterwards).
    monkeypatch.delitem(sys.modules, f"carto_proxy.adapters.{adapter}", raising=False)
    with pytest.raises(MissingExtraError) as missing:
        importlib.import_module(f"carto_proxy.adapters.{adapter}")
    assert f"pip install 'carto-proxy[{extra}]'" in str(missing.value)
    assert isinstance(missing.value, ImportError)
    assert isinstance(missing.value.__cause__, ImportError)


THREE_PROXIES = ProxyConfig.from_env(
    environ={
        "HTTP_PROXY": "http://plain.test:3128",
        "HTTPS_PROXY": "http://tls-targets.test:3128",
        "GRPC_PROXY": "http://grpc.test:3128",
    }
)


@pytest.mark.parametrize(
    "url", ["http://a.test/", "https://a.test/", "wss://a.test/", "grpc://a.test:443/"]
)
def test_every_proxy_a_url_can_be_routed_to_has_its_client_ready(url: str) -> None:
    built: list[ProxyURL | None] = []

    def make(proxy: ProxyURL | None) -> ProxyURL | None:
        built.append(proxy)
        return proxy

    clients = InnerClients(THREE_PROXIES, make)
    route = THREE_PROXIES.route(url)
    assert route.proxy is not None
    assert clients.pick(route) == route.proxy
    assert len(built) == 4  # the direct client and one per proxy, built up front


def test_a_route_of_another_configuration_is_a_bug_not_a_new_client() -> None:
    clients = InnerClients(ProxyConfig.direct(), lambda proxy: proxy)
    with pytest.raises(RuntimeError, match="carto_proxy bug"):
        clients.pick(THREE_PROXIES.route("https://a.test/"))
