"""The geocoder's proxied path proved without pytest: the testing kit's pieces are context managers.

Run it with ``python without_pytest.py``: it exits quietly when the request went through the
(TLS) proxy, and fails saying what happened otherwise.
"""

from __future__ import annotations

from geocoder import Geocoder

from carto_proxy.testing import (
    LocalOrigin,
    RecordingProxy,
    assert_tunnelled,
    block_direct,
    proxy_environ,
)


def main() -> None:
    """Send one request through a TLS proxy to a local stand-in for the API."""
    with (
        LocalOrigin() as origin,
        RecordingProxy(tls=True, upstreams=origin.upstreams("geocoder.example.com")) as proxy,
    ):
        origin.reply("/v1/geocode", json={"lat": 40.4168, "lon": -3.7038})
        # NODE_EXTRA_CA_CERTS trusts the proxy's CA and the origin's; block_direct makes a
        # request that goes around the proxy fail at once, and keeps everything on loopback.
        with (
            proxy_environ(proxy, ca_file=origin.ca_file) as config,
            block_direct(config),
            Geocoder("https://geocoder.example.com", timeout=5) as geocoder,
        ):
            assert geocoder.geocode("Madrid") == (40.4168, -3.7038)
        assert_tunnelled("geocoder.example.com:443", proxy=proxy)


if __name__ == "__main__":
    main()
