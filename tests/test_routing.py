"""The decision order (DESIGN §3.5), as tables over CARTO's own examples."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from carto_proxy import Action, Protocol, ProxyConfig, Rule, TargetError, Warehouse

# The two .env blocks of CARTO's "Configure an external proxy" page.
CARTO_HTTP = {
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY"), "http://my-proxy:3128"),
    **dict.fromkeys(("http_proxy", "https_proxy", "grpc_proxy"), "http://my-proxy:3128"),
    "NO_PROXY": "localhost,mega.io,dropbox.com,filestack.com",
    "no_proxy": "localhost,mega.io,dropbox.com,filestack.com",
}
CARTO_HTTPS = {
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY"), "https://my-proxy:3129"),
    **dict.fromkeys(("http_proxy", "https_proxy"), "https://my-proxy:3129"),
    "NO_PROXY": "mega.io,dropbox.com,filestack.com",
    "no_proxy": "mega.io,dropbox.com,filestack.com",
    "NODE_TLS_REJECT_UNAUTHORIZED": "0",
}
SNOWFLAKE = "https://xy12345.eu-central-1.snowflakecomputing.com/session/v1/login-request"
P, D = Action.PROXY, Action.DIRECT
HTTP_PROXY, HTTPS_PROXY = "http://my-proxy:3128", "https://my-proxy:3129"

CASES = [
    # (environment, target, keyword arguments, action, rule, proxy, matched entry, egress)
    (CARTO_HTTP, "https://auth.carto.com", {}, P, Rule.PROXY, HTTP_PROXY, None, False),
    (CARTO_HTTP, "http://auth.carto.com", {}, P, Rule.PROXY, HTTP_PROXY, None, False),
    (CARTO_HTTP, "https://mega.io/file", {}, D, Rule.NO_PROXY, None, "mega.io", False),
    (CARTO_HTTP, "https://www.dropbox.com", {}, D, Rule.NO_PROXY, None, "dropbox.com", False),
    (CARTO_HTTP, "http://localhost:8080", {}, D, Rule.NO_PROXY, None, "localhost", False),
    (CARTO_HTTP, "https://127.0.0.1", {}, P, Rule.PROXY, HTTP_PROXY, None, False),
    (CARTO_HTTP, SNOWFLAKE, {}, P, Rule.PROXY, HTTP_PROXY, None, False),
    (CARTO_HTTP, "https://bigquery.googleapis.com", {}, P, Rule.PROXY, HTTP_PROXY, None, False),
    (
        CARTO_HTTP,
        "bigquerystorage.googleapis.com:443",
        {"protocol": Protocol.GRPC},
        P,
        Rule.PROXY,
        HTTP_PROXY,
        None,
        False,
    ),
    (
        CARTO_HTTP,
        "postgresql://carto@db.internal:5432/carto",
        {},
        D,
        Rule.TCP_BYPASS,
        None,
        None,
        True,
    ),
    (
        CARTO_HTTP,
        "https://c.x.us-east-1.redshift.amazonaws.com",
        {},
        D,
        Rule.TCP_BYPASS,
        None,
        None,
        True,
    ),
    (
        CARTO_HTTP,
        "https://dbc-1.cloud.databricks.com",
        {},
        D,
        Rule.WAREHOUSE_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (
        CARTO_HTTP,
        "https://host.example",
        {"warehouse": Warehouse.DATABRICKS},
        D,
        Rule.WAREHOUSE_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (
        CARTO_HTTP,
        "https://host.example",
        {"warehouse": "postgresql"},
        D,
        Rule.TCP_BYPASS,
        None,
        None,
        True,
    ),
    (CARTO_HTTPS, SNOWFLAKE, {}, D, Rule.WAREHOUSE_HTTPS_UNSUPPORTED, None, None, True),
    (
        CARTO_HTTPS,
        "http://ocsp.snowflakecomputing.com",
        {},
        D,
        Rule.WAREHOUSE_HTTPS_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (
        CARTO_HTTPS,
        "https://host.example",
        {"warehouse": "snowflake"},
        D,
        Rule.WAREHOUSE_HTTPS_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (CARTO_HTTPS, "https://bigquery.googleapis.com", {}, P, Rule.PROXY, HTTPS_PROXY, None, False),
    (CARTO_HTTPS, "https://auth.carto.com", {}, P, Rule.PROXY, HTTPS_PROXY, None, False),
    (
        CARTO_HTTPS,
        "bigquerystorage.googleapis.com:443",
        {"protocol": "grpc"},
        D,
        Rule.GRPC_HTTPS_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (CARTO_HTTPS, "https://filestack.com", {}, D, Rule.NO_PROXY, None, "filestack.com", False),
    # NO_PROXY comes before the Snowflake rule; TCP and Databricks come before NO_PROXY.
    (
        {**CARTO_HTTPS, "no_proxy": ".snowflakecomputing.com"},
        SNOWFLAKE,
        {},
        D,
        Rule.NO_PROXY,
        None,
        ".snowflakecomputing.com",
        False,
    ),
    (
        {**CARTO_HTTP, "no_proxy": "db.internal"},
        "postgres://db.internal/carto",
        {},
        D,
        Rule.TCP_BYPASS,
        None,
        None,
        True,
    ),
    (
        {**CARTO_HTTP, "no_proxy": ".cloud.databricks.com"},
        "https://a.cloud.databricks.com",
        {},
        D,
        Rule.WAREHOUSE_UNSUPPORTED,
        None,
        None,
        True,
    ),
    # No proxy at all, and no fallback between HTTP_PROXY and HTTPS_PROXY.
    ({}, "https://auth.carto.com", {}, D, Rule.NO_PROXY_CONFIGURED, None, None, False),
    ({}, "postgres://db.internal/carto", {}, D, Rule.TCP_BYPASS, None, None, False),
    ({}, SNOWFLAKE, {}, D, Rule.NO_PROXY_CONFIGURED, None, None, False),
    (
        {"http_proxy": HTTP_PROXY},
        "https://auth.carto.com",
        {},
        D,
        Rule.NO_PROXY_CONFIGURED,
        None,
        None,
        False,
    ),
    (
        {"https_proxy": HTTP_PROXY},
        "http://auth.carto.com",
        {},
        D,
        Rule.NO_PROXY_CONFIGURED,
        None,
        None,
        False,
    ),
    # gRPC: GRPC_PROXY, else HTTPS_PROXY, else HTTP_PROXY; NO_GRPC_PROXY shadows NO_PROXY.
    (
        {"http_proxy": HTTP_PROXY},
        "dns:///svc.example:50051",
        {},
        P,
        Rule.PROXY,
        HTTP_PROXY,
        None,
        False,
    ),
    (
        {"https_proxy": "http://other:3128", "http_proxy": HTTP_PROXY},
        "svc.example:50051",
        {"protocol": Protocol.GRPC},
        P,
        Rule.PROXY,
        "http://other:3128",
        None,
        False,
    ),
    (
        {"grpc_proxy": "http://g:1", "https_proxy": HTTPS_PROXY},
        "grpc://svc.example",
        {},
        P,
        Rule.PROXY,
        "http://g:1",
        None,
        False,
    ),
    (
        {"grpc_proxy": HTTPS_PROXY},
        "grpc://svc.example",
        {},
        D,
        Rule.GRPC_HTTPS_UNSUPPORTED,
        None,
        None,
        True,
    ),
    (
        {"grpc_proxy": HTTP_PROXY, "no_proxy": "svc.example", "no_grpc_proxy": "other.example"},
        "grpc://svc.example",
        {},
        P,
        Rule.PROXY,
        HTTP_PROXY,
        None,
        False,
    ),
    (
        {"grpc_proxy": HTTP_PROXY, "no_proxy": "svc.example", "no_grpc_proxy": "other.example"},
        "https://svc.example",
        {},
        D,
        Rule.NO_PROXY,
        None,
        "svc.example",
        False,
    ),
    (
        {"grpc_proxy": HTTP_PROXY},
        "https://svc.example",
        {},
        D,
        Rule.NO_PROXY_CONFIGURED,
        None,
        None,
        False,
    ),
    (
        {"grpc_proxy": HTTP_PROXY, "no_grpc_proxy": ".example"},
        "grpc://svc.example",
        {},
        D,
        Rule.NO_PROXY,
        None,
        ".example",
        False,
    ),
]


@pytest.mark.parametrize(
    ("environ", "target", "kwargs", "action", "rule", "proxy", "entry", "egress"), CASES
)
def test_route(
    environ: dict[str, str],
    target: str,
    kwargs: dict[str, object],
    action: Action,
    rule: Rule,
    proxy: str | None,
    entry: str | None,
    egress: bool,
) -> None:
    route = ProxyConfig.from_env(environ=environ).route(target, **kwargs)  # type: ignore[arg-type]
    assert (route.action, route.rule) == (action, rule)
    assert (str(route.proxy) if route.proxy else None) == proxy
    assert route.matched_entry == entry
    assert route.needs_direct_egress is egress
    assert route.reason.endswith(".")


def test_snowflake_reason_under_https_proxy() -> None:
    route = ProxyConfig.from_env(environ=CARTO_HTTPS).route(SNOWFLAKE)
    assert route.reason.startswith("Snowflake does not support HTTPS proxies;")
    assert route.warehouse is Warehouse.SNOWFLAKE
    assert route.target.host == "xy12345.eu-central-1.snowflakecomputing.com"


def test_route_reports_warehouse_and_variable() -> None:
    config = ProxyConfig.from_env(environ=CARTO_HTTP)
    route = config.route("bigquerystorage.googleapis.com:443", protocol=Protocol.GRPC)
    assert route.warehouse is Warehouse.BIGQUERY
    assert route.variable == "GRPC_PROXY"
    assert "GRPC_PROXY" in route.reason
    assert str(route) == (
        "PROXY grpc://bigquerystorage.googleapis.com:443 via http://my-proxy:3128 (proxy)"
    )


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"protocol": "ftp"}, "protocol 'ftp'"), ({"warehouse": "oracle"}, "warehouse 'oracle'")],
)
def test_bad_protocol_or_warehouse(kwargs: dict[str, str], problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        ProxyConfig.direct().route("https://example.com", **kwargs)  # type: ignore[arg-type]


def test_route_is_cached_and_bounded() -> None:
    config = ProxyConfig.from_env(environ=CARTO_HTTP)
    assert config.route("https://a.example") is config.route("https://a.example")
    for i in range(5000):
        config.route(f"https://h{i}.example")
    assert len(config._routes) <= 4096


def test_same_answers_from_eight_threads() -> None:
    config = ProxyConfig.from_env(environ={**CARTO_HTTPS, "no_proxy": ".internal,10.0.0.0/8"})
    targets = [
        SNOWFLAKE,
        "https://a.internal",
        "https://10.1.1.1",
        "https://auth.carto.com",
        "postgres://db/x",
        "grpc://bigquerystorage.googleapis.com",
    ] * 200
    expected = [ProxyConfig.from_env(environ=config.to_env()).route(t) for t in targets]

    def run(_: int) -> list[object]:
        return [config.route(t) for t in targets]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    assert all(result == expected for result in results)
