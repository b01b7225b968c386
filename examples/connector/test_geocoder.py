"""Tests for the geocoder connector, written with carto_proxy's testing kit.

The first group runs the connector against a real recording proxy on loopback
(``carto_proxy_*`` fixtures); the second mocks the API with respx and checks the routing
decisions with ``record_routes()``: no socket is opened at all.
"""

from __future__ import annotations

import pytest
import respx
from geocoder import Geocoder, GeocoderError

from carto_proxy import Action, ProxyConfig, Rule
from carto_proxy.testing import (
    RecordingProxy,
    assert_not_proxied,
    assert_tunnelled,
    proxy_environ,
    record_routes,
)

API = "https://geocoder.example.com"
MADRID = {"lat": 40.4168, "lon": -3.7038}

# --- against a recording proxy ------------------------------------------------------------------


@pytest.mark.carto_proxy(origin_hosts=["geocoder.example.com"])
def test_requests_go_through_the_proxy(carto_proxy_environ, carto_proxy_origin):
    carto_proxy_origin.reply("/v1/geocode", json=MADRID)

    with Geocoder(API) as geocoder:
        assert geocoder.geocode("Puerta del Sol, Madrid") == (40.4168, -3.7038)

    tunnel = assert_tunnelled("geocoder.example.com:443")
    assert tunnel.bytes_down > 0
    (request,) = carto_proxy_origin.requests
    assert request.path.startswith("/v1/geocode?q=Puerta")


@pytest.mark.carto_proxy(origin_hosts=["geocoder.internal"], no_proxy=".internal")
def test_no_proxy_hosts_go_direct(
    carto_proxy_environ, carto_proxy_origin, carto_proxy_direct_guard
):
    carto_proxy_origin.reply("/v1/geocode", json=MADRID)

    with Geocoder("https://geocoder.internal") as geocoder:
        assert geocoder.geocode("Madrid") == (40.4168, -3.7038)

    assert_not_proxied("geocoder.internal")
    assert carto_proxy_direct_guard.went_direct("geocoder.internal")


@pytest.mark.carto_proxy(tls=True, origin_hosts=["geocoder.example.com"])
def test_https_proxy(carto_proxy_environ, carto_proxy_origin):
    # CARTO's HTTPS proxy: TLS to the proxy, then TLS to the API inside the tunnel.
    assert str(carto_proxy_environ.https_proxy).startswith("https://")
    carto_proxy_origin.reply("/v1/geocode", json=MADRID)

    with Geocoder(API) as geocoder:
        assert geocoder.geocode("Madrid") == (40.4168, -3.7038)

    assert_tunnelled("geocoder.example.com:443")


def test_proxy_down_is_a_clear_error(carto_proxy_clean_environ):
    proxy = RecordingProxy().start()
    proxy.stop()  # nothing listens at proxy.url any more

    with (
        proxy_environ(proxy),
        Geocoder(API, timeout=5) as geocoder,
        pytest.raises(GeocoderError, match=r"through the proxy http://127\.0\.0\.1:"),
    ):
        geocoder.geocode("Madrid")


@pytest.mark.carto_proxy(origin_hosts=["geocoder.example.com"])
def test_proxy_refusing_the_api_is_a_clear_error(carto_proxy_environ, carto_proxy_recording_proxy):
    carto_proxy_recording_proxy.refuse("geocoder.example.com", 403)

    with Geocoder(API) as geocoder, pytest.raises(GeocoderError, match="403"):
        geocoder.geocode("Madrid")

    assert_tunnelled("geocoder.example.com:443", status=403)


# --- unit tests: respx answers, record_routes() shows the decisions ------------------------------

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
