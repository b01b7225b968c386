"""The API details of issue 13 §3: target objects, TCP warehouses, ProxyURL.parse, replace()."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

import pytest

from carto_proxy import (
    Action,
    ConfigError,
    Protocol,
    ProxyConfig,
    ProxyURL,
    Rule,
    TargetError,
    Warehouse,
    check,
)

from .test_routing import CARTO_HTTP

CONFIG = ProxyConfig.from_env(environ={**CARTO_HTTP, "no_proxy": "db.internal"})


@pytest.mark.parametrize(
    "target", [None, b"https://example.com", 443, 4.2, ["a"], {"a": 1}, object()]
)
def test_route_refuses_what_is_not_a_url(target: object) -> None:
    with pytest.raises(TargetError, match="a target is a URL"):
        CONFIG.route(target)  # type: ignore[arg-type]


def url_objects() -> list[object]:
    import httpx
    import yarl

    text = "https://user:S3cret@auth.carto.com:8443/path?q=1"
    return [
        httpx.URL(text),
        yarl.URL(text),
        urllib.parse.urlsplit(text),
        urllib.parse.urlparse(text),
    ]


@pytest.mark.parametrize("target", url_objects(), ids=lambda t: type(t).__name__)
def test_url_objects_keep_working(target: object) -> None:
    route = CONFIG.route(target)  # type: ignore[arg-type]
    assert (route.action, route.target.host, route.target.port) == (
        Action.PROXY,
        "auth.carto.com",
        8443,
    )
    assert "S3cret" not in f"{route} {route.reason} {route!r}"


def test_a_bad_url_object_never_shows_its_password() -> None:
    import yarl

    with pytest.raises(TargetError) as caught:
        CONFIG.route(yarl.URL("ftp://user:S3cret@example.com/"))  # type: ignore[arg-type]
    assert "S3cret" not in f"{caught.value} {caught.value!r}"


@pytest.mark.parametrize(
    ("target", "warehouse", "shown"),
    [
        ("db.internal:5432", "postgresql", "DIRECT tcp://db.internal:5432 (tcp_bypass)"),
        ("db.internal", Warehouse.POSTGRESQL, "DIRECT tcp://db.internal:5432 (tcp_bypass)"),
        ("cluster.example:5439", "redshift", "DIRECT tcp://cluster.example:5439 (tcp_bypass)"),
        ("cluster.example", "Redshift", "DIRECT tcp://cluster.example:5439 (tcp_bypass)"),
        (
            "c.abc.eu-west-1.redshift.amazonaws.com:5439",
            None,
            "DIRECT tcp://c.abc.eu-west-1.redshift.amazonaws.com:5439 (tcp_bypass)",
        ),
    ],
)
def test_tcp_warehouses_show_the_tcp_protocol(
    target: str, warehouse: str | None, shown: str
) -> None:
    route = CONFIG.route(target, warehouse=warehouse)
    assert str(route) == shown
    assert route.target.protocol is Protocol.TCP
    assert route.rule is Rule.TCP_BYPASS
    assert route.needs_direct_egress


def test_an_http_warehouse_keeps_the_protocol_of_its_target() -> None:
    route = CONFIG.route("example.com", warehouse="bigquery")
    assert route.target.protocol is Protocol.HTTPS


def test_proxy_url_parse_is_public() -> None:
    assert ProxyURL.parse("my-proxy:3128") == ProxyURL(scheme="http", host="my-proxy", port=3128)
    assert str(ProxyURL.parse(" HTTPS://[::1] ")) == "https://[::1]:443"
    with pytest.raises(ConfigError) as caught:
        ProxyURL.parse("http://u:p/w@proxy:3128", variable="HTTPS_PROXY")
    assert (caught.value.code, caught.value.variable) == ("CP106", "HTTPS_PROXY")
    assert "p/w" not in str(caught.value)
    with pytest.raises(ConfigError, match="socks5"):
        ProxyURL.parse("socks5://p:1080")


def test_replace_accepts_text_parsed_like_a_variable() -> None:
    config = ProxyConfig.from_env(environ=CARTO_HTTP)
    variant = dataclasses.replace(config, https_proxy="http://p:3128", no_proxy=".corp")
    assert variant.https_proxy == ProxyURL(scheme="http", host="p", port=3128)
    assert variant.route("https://auth.carto.com").proxy == variant.https_proxy
    assert variant.route("https://db.corp").rule is Rule.NO_PROXY
    assert dataclasses.replace(config, grpc_proxy="q:1").grpc_proxy == ProxyURL(
        scheme="http", host="q", port=1
    )
    assert ProxyConfig(http_proxy="http://[::1]:3128").http_proxy == ProxyURL(  # type: ignore[arg-type]
        scheme="http", host="::1", port=3128
    )
    for bad, code in [("socks5://p:1", "CP107"), ("http://u:pw@p:1", "CP106")]:
        with pytest.raises(ConfigError) as caught:
            dataclasses.replace(config, https_proxy=bad)
        assert (caught.value.code, caught.value.variable) == (code, "https_proxy")
        assert "pw@" not in str(caught.value)


def test_a_replaced_config_no_longer_describes_its_old_sources() -> None:
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "http://upper:1"})
    assert config.sources is not None
    variant = dataclasses.replace(config, https_proxy="http://other:3128")
    assert variant.sources is None
    assert variant == ProxyConfig(https_proxy=ProxyURL.parse("http://other:3128"))
    with pytest.raises(TypeError):
        ProxyConfig(sources=config.sources)  # type: ignore[call-arg]


def test_a_tuple_target_is_refused_not_served_from_the_cache() -> None:
    config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy:3128"})
    config.route("x.example", protocol="grpc")  # caches the key ("x.example", "grpc", None)
    with pytest.raises(TargetError):
        config.route(("x.example", "grpc", None))  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [ProxyConfig.from_env, lambda **kw: check(environ={}, **kw)])
def test_a_bad_ca_mode_is_a_config_error(make: Any) -> None:
    with pytest.raises(ConfigError, match="'load' or 'defer'"):
        make(ca="lod")
