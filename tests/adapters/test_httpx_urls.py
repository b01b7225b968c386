"""Issue 15: the httpx adapter and the URLs httpx accepts but carto_proxy cannot route.

httpx takes any RFC 3986 host (sub-delimiters, ``~``, percent signs, empty or hyphen-edged
labels) and any port number, ``0`` and ``70000`` included. The adapter refuses them, before
anything is sent, with :class:`~carto_proxy.adapters.httpx.UnroutableURL`: an
``httpx.InvalidURL`` (what httpx itself raises for a URL it cannot use) that is also a
:class:`~carto_proxy.TargetError` naming the problem. Every other URL httpx accepts is routed.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carto_proxy import Route, TargetError
from carto_proxy.adapters import httpx as carto_httpx
from tests.adapters.http_cases import CONFIG

_REG_NAME = string.ascii_letters + string.digits + "-._~!$&'()*+,;=%"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.carto.com:0/", "the port is not a number from 1 to 65535"),
        ("https://api.carto.com:70000/", "the port is not a number from 1 to 65535"),
        ("https://a!b/", "the host name is missing or not valid"),
        ("https://-leading.example/", "the host name is missing or not valid"),
        ("http://a..b/", "the host name is missing or not valid"),
        ("http://%41b/", "the host name is missing or not valid"),
        ("https://*/", "the host name is missing or not valid"),
    ],
)
def test_urls_httpx_accepts_but_no_route_can_reach_are_invalid_urls(url: str, problem: str) -> None:
    httpx.URL(url)  # httpx itself accepts it
    with carto_httpx.client(CONFIG) as client, pytest.raises(httpx.InvalidURL) as refused:
        client.get(url)
    assert isinstance(refused.value, TargetError)
    assert refused.value.problem == problem
    assert problem in str(refused.value)
    with pytest.raises(carto_httpx.UnroutableURL):
        carto_httpx.route_for(client, url)


class Redirecting(httpx.BaseTransport):
    """Stands in for httpx.HTTPTransport: every request is answered with a redirect."""

    sent: ClassVar[list[str]] = []

    def __init__(self, **kwargs: Any) -> None:
        pass

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        Redirecting.sent.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://bad!host:8443/"})


def test_a_redirect_to_an_unroutable_url_is_refused_before_it_is_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpx, "HTTPTransport", Redirecting)
    Redirecting.sent = []
    with (
        carto_httpx.client(CONFIG, follow_redirects=True) as client,
        pytest.raises(carto_httpx.UnroutableURL, match="not valid"),
    ):
        client.get("https://api.carto.com/start")
    assert Redirecting.sent == ["https://api.carto.com/start"]


TRANSPORT = carto_httpx.transport(CONFIG)


hosts = st.one_of(
    st.text(alphabet=_REG_NAME, min_size=1, max_size=16),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9-]{1,8}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
    st.text(alphabet=st.characters(min_codepoint=0xA1, max_codepoint=0x2FFF), min_size=1),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["http", "https", "HTTPS"]),
    host=hosts,
    port=st.one_of(st.none(), st.integers(min_value=0, max_value=99999)),
)
def test_every_url_httpx_accepts_is_routed_or_an_invalid_url(
    scheme: str, host: str, port: int | None
) -> None:
    text = f"{scheme}://{host}{'' if port is None else f':{port}'}/path"
    try:
        request = httpx.Request("GET", text)
    except (httpx.InvalidURL, ValueError):
        return  # httpx refuses it itself
    try:
        route = TRANSPORT.route(request)
    except carto_httpx.UnroutableURL as error:
        refused: BaseException = error
    else:
        assert isinstance(route, Route)
        assert route.target.port == (request.url.port or (443 if scheme.lower() == "https" else 80))
        return
    assert isinstance(refused, httpx.InvalidURL)
    assert isinstance(refused, TargetError)
    assert refused.problem in str(refused)
