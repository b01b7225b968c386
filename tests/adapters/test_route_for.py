"""route_for(): the route a client built by carto_proxy would use, asked without side effects.

Answers are checked against the decisions the clients report when they act (through a real
Squid, in observe_cases.py); here: the inspected client types, relative URLs, gRPC channels,
and the TypeError for clients carto_proxy did not build.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import requests
import urllib3

from carto_proxy import Action, ProxyConfig, RouteEvent, Rule, observe
from carto_proxy.adapters import httpx as carto_httpx
from carto_proxy.adapters import requests as carto_requests
from carto_proxy.adapters import urllib3 as carto_urllib3

CONFIG = ProxyConfig.from_env(
    environ={
        "HTTPS_PROXY": "http://proxy.test:3128",
        "GRPC_PROXY": "http://grpc-proxy.test:3128",
        "NO_PROXY": ".internal",
    }
)


@pytest.fixture
def events() -> Any:
    heard: list[RouteEvent] = []
    with observe(heard.append):
        yield heard


def test_httpx_clients_and_transports(events: list[RouteEvent]) -> None:
    client = carto_httpx.client(CONFIG, base_url="https://api.example.com/v3/")
    assert carto_httpx.route_for(client, "maps").proxy == CONFIG.https_proxy  # base_url joined
    assert carto_httpx.route_for(client, "https://db.internal/x").rule is Rule.NO_PROXY
    transport = carto_httpx.transport(CONFIG)
    assert carto_httpx.route_for(transport, "https://db.internal").action is Action.DIRECT

    async def inspect() -> Action:
        async with carto_httpx.async_client(CONFIG) as async_client:
            return carto_httpx.route_for(async_client, "https://api.example.com").action

    assert asyncio.run(inspect()) is Action.PROXY
    assert events == []


def test_urllib3_and_requests(events: list[RouteEvent]) -> None:
    manager = carto_urllib3.pool_manager(CONFIG)
    assert carto_urllib3.route_for(manager, "https://api.example.com/").action is Action.PROXY
    session = carto_requests.session(CONFIG)
    assert carto_requests.route_for(session, "https://db.internal/").matched_entry == ".internal"
    mounted = requests.Session()
    carto_requests.mount(mounted, CONFIG)
    assert carto_requests.route_for(mounted, "https://api.example.com").action is Action.PROXY
    assert events == []


@pytest.mark.parametrize(
    ("route_for", "foreign"),
    [
        (carto_httpx.route_for, httpx.Client()),
        (carto_httpx.route_for, "https://api.example.com"),
        (carto_urllib3.route_for, urllib3.PoolManager()),
        (carto_requests.route_for, requests.Session()),
        (carto_requests.route_for, object()),
    ],
    ids=["httpx.Client", "str", "urllib3.PoolManager", "requests.Session", "object"],
)
def test_a_client_carto_proxy_did_not_build_is_a_type_error(route_for: Any, foreign: Any) -> None:
    with pytest.raises(TypeError, match="does not route by a ProxyConfig"):
        route_for(foreign, "https://api.example.com")


def test_the_adapters_route_methods_are_questions_too(events: list[RouteEvent]) -> None:
    request = httpx.Request("GET", "https://api.example.com")
    assert carto_httpx.transport(CONFIG).route(request).action is Action.PROXY
    assert carto_urllib3.pool_manager(CONFIG).route("https://api.example.com").proxy
    prepared = requests.Request("GET", "https://db.internal/").prepare()
    adapter = carto_requests.RoutingAdapter(CONFIG)
    assert adapter.route(prepared).action is Action.DIRECT
    assert events == []


def test_grpc_channels(caplog: pytest.LogCaptureFixture) -> None:
    grpc = pytest.importorskip("carto_proxy.adapters.grpc")
    plain = pytest.importorskip("grpc")
    heard: list[RouteEvent] = []
    target = "bigquerystorage.googleapis.com:443"
    with (
        caplog.at_level(logging.DEBUG, logger="carto_proxy.route"),
        grpc.insecure_channel(CONFIG, target) as channel,
    ):
        with observe(heard.append):
            route = grpc.route_for(channel)
        assert (route.action, route.proxy) == (Action.PROXY, CONFIG.grpc_proxy)
    assert heard == []
    # Building the channel is the decision: it is logged then, and only then.
    assert [r.getMessage() for r in caplog.records] == [
        f"grpc://{target} → PROXY via {CONFIG.grpc_proxy} (rule proxy, GRPC_PROXY) [grpc]"
    ]
    with grpc.insecure_channel(CONFIG, "unix:/run/app.sock") as local:
        assert grpc.route_for(local) is None  # never proxied
    with plain.insecure_channel("localhost:1") as foreign, pytest.raises(TypeError, match="grpc"):
        grpc.route_for(foreign)
    with pytest.raises(TypeError):
        grpc.route_for("bigquerystorage.googleapis.com:443")
