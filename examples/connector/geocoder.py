"""A small connector built on carto_proxy's httpx adapter: a client for a geocoding API.

Every request it sends is routed by carto_proxy: through CARTO's proxy, or direct when
``NO_PROXY`` (or a warehouse rule) says so, and redirects are routed again at each hop.
"""

from __future__ import annotations

from types import TracebackType

import httpx

from carto_proxy import ProxyConfig
from carto_proxy.adapters import httpx as carto_httpx

__all__ = ["Geocoder", "GeocoderError"]


class GeocoderError(Exception):
    """The geocoding API could not be reached or refused the request."""


class Geocoder:
    """Turn addresses into coordinates with a geocoding API.

    Args:
        base_url: where the API lives.
        config: the proxy configuration; ``None`` reads CARTO's variables from the environment.
        timeout: seconds allowed for connecting and for each read.
    """

    def __init__(
        self,
        base_url: str = "https://geocoder.example.com",
        *,
        config: ProxyConfig | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = carto_httpx.client(
            config, base_url=base_url, timeout=timeout, follow_redirects=True
        )

    def geocode(self, address: str) -> tuple[float, float]:
        """Return ``(latitude, longitude)`` of ``address``.

        Raises:
            GeocoderError: the API could not be reached (the message says which route
                carto_proxy chose) or answered with an error.
        """
        try:
            response = self._http.get("/v1/geocode", params={"q": address})
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise GeocoderError(f"geocoding {address!r} failed: {error}") from error
        found = response.json()
        return float(found["lat"]), float(found["lon"])

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Geocoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
