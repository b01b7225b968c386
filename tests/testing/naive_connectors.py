"""Connectors that get the proxy wrong: drop-in ``geocoder.py`` files for the guide's example.

Each has the interface of ``examples/connector/geocoder.py`` (``Geocoder``, ``GeocoderError``)
and fetches with one client used the naive way, so the guide's own tests can run against it:
what they print is what docs/testing-failures.md shows.
"""

from __future__ import annotations

_TEMPLATE = '''"""A geocoder whose requests go out through {what}."""

import json
import urllib.parse
import urllib.request

import httpx
import requests


class GeocoderError(Exception):
    """The geocoding API could not be reached or refused the request."""


class Geocoder:
    def __init__(self, base_url="https://geocoder.example.com", *, config=None, timeout=10.0):
        self._base_url, self._timeout = base_url, timeout

    def geocode(self, address):
        url = f"{{self._base_url}}/v1/geocode?" + urllib.parse.urlencode({{"q": address}})
        try:
            found = get_json(url, self._timeout)
        except Exception as error:  # each client has errors of its own
            raise GeocoderError(f"geocoding {{address!r}} failed: {{error}}") from error
        return float(found["lat"]), float(found["lon"])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


{get_json}
'''

_GET_JSON = {
    "httpx_trust_env_false": (
        "httpx.Client(trust_env=False)",
        """def get_json(url, timeout):
    with httpx.Client(trust_env=False, timeout=timeout) as http:
        response = http.get(url)
        response.raise_for_status()
        return response.json()""",
    ),
    "httpx_plain": (
        "httpx.Client()",
        """def get_json(url, timeout):
    with httpx.Client(timeout=timeout) as http:
        response = http.get(url)
        response.raise_for_status()
        return response.json()""",
    ),
    "requests_get": (
        "requests.get()",
        """def get_json(url, timeout):
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()""",
    ),
    "urlopen": (
        "urllib.request.urlopen()",
        """def get_json(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)""",
    ),
}

NAIVE = tuple(_GET_JSON)
"""The naive connectors, by name."""

FETCH_LINE = "found = get_json(url, self._timeout)"
"""The line of ``geocoder.py`` that sends the request (the line a failure points at)."""


def geocoder_source(name: str) -> str:
    """Return the text of the naive connector *name*, to write as a project's ``geocoder.py``."""
    what, get_json = _GET_JSON[name]
    return _TEMPLATE.format(what=what, get_json=get_json)
