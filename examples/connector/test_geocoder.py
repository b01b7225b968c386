"""Tests for the geocoder connector, written with carto_proxy's testing kit.

They run the connector against a real recording proxy on loopback (``carto_proxy_*``
fixtures). test_geocoder_unit.py mocks the API with respx instead, and checks the routing
decisions with ``record_routes()``: no socket is opened at all.
"""

from __future__ import annotations

import pytest
from geocoder import Geocoder, GeocoderError

from carto_proxy.testing import RecordingProxy, assert_not_proxied, assert_tunnelled, proxy_environ

API = "https://geocoder.example.com"
MADRID = {"lat": 40.4168, "lon": -3.7038}


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
        pytest.raises(
            GeocoderError, match=r"\[carto_proxy: https://geocoder\.example\.com:443 through"
        ),
    ):
        geocoder.geocode("Madrid")


@pytest.mark.carto_proxy(origin_hosts=["geocoder.example.com"])
def test_proxy_refusing_the_api_is_a_clear_error(carto_proxy_environ, carto_proxy_recording_proxy):
    carto_proxy_recording_proxy.refuse("geocoder.example.com", 403)

    with Geocoder(API) as geocoder, pytest.raises(GeocoderError, match="403"):
        geocoder.geocode("Madrid")

    assert_tunnelled("geocoder.example.com:443", status=403)
