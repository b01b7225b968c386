"""Unit tests for the geocoder connector: respx answers, record_routes() shows the decisions.

respx (https://lundberg.github.io/respx/) is a mocking library for httpx, not part of
carto-proxy: ``pip install respx`` to run these; without it they are skipped.
"""

from __future__ import annotations

import pytest
from geocoder import Geocoder

from carto_proxy import Action, ProxyConfig, Rule
from carto_proxy.testing import record_routes

respx = pytest.importorskip(
    "respx", reason="these tests mock the API with respx: pip install respx"
)

API = "https://geocoder.example.com"
MADRID = {"lat": 40.4168, "lon": -3.7038}


CONFIG = ProxyConfig.from_env(
    environ={"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".internal"}
)


def test_routing_without_a_network():
    with respx.mock(assert_all_called=True) as api, record_routes() as routes:
        api.get(f"{API}/v1/geocode").respond(json=MADRID)
        with Geocoder(API, config=CONFIG) as geocoder:
            assert geocoder.geocode("Madrid") == (40.4168, -3.7038)

    (route,) = routes
    assert route.action is Action.PROXY
    assert str(route.proxy) == "http://proxy.corp:3128"
    assert route.reason == "Sent through the proxy http://proxy.corp:3128 from HTTPS_PROXY."


def test_each_redirect_hop_is_routed_again():
    with respx.mock(assert_all_called=True) as api, record_routes() as routes:
        api.get(f"{API}/v1/geocode").respond(
            307, headers={"Location": "https://cache.internal/v1/geocode?q=Madrid"}
        )
        api.get("https://cache.internal/v1/geocode").respond(json=MADRID)
        with Geocoder(API, config=CONFIG) as geocoder:
            geocoder.geocode("Madrid")

    assert [(r.target.host, r.action, r.rule) for r in routes] == [
        ("geocoder.example.com", Action.PROXY, Rule.PROXY),
        ("cache.internal", Action.DIRECT, Rule.NO_PROXY),
    ]
    assert routes[1].matched_entry == ".internal"
