"""carto_proxy.adapters.snowflake: parameters per driver line, and logins proven through Squid.

The same tests run against the installed driver, 4.x (classic) or 5.x (universal); the nox
``snowflake`` session runs them once per line. The integration tests log in to a local fake
Snowflake (``host="localhost"``, ``protocol="http"``) and read Squid's log.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import certifi
import pytest

from carto_proxy import Action, ConfigError, ProxyConfig, Rule, TargetError, Warehouse
from carto_proxy._no_proxy import NoProxy
from carto_proxy.testing import record_routes
from tests.support.fake_snowflake import (
    ACCOUNT,
    LOGIN_PATH,
    PASSWORD,
    USER,
    LoopbackOnly,
    start_fake_snowflake,
)
from tests.support.names import DENIED_HOST, LOOPBACK, SNOWFLAKE_HOST
from tests.support.origins import FakeHTTPServer
from tests.support.pki import PKI
from tests.support.squid import Squid, SquidLog

pytest.importorskip("snowflake.connector")

from carto_proxy.adapters import snowflake as adapter

pytestmark = pytest.mark.snowflake

SQUID = "http://squid.internal:3128"
DEAD_PROXY = f"http://{LOOPBACK}:9"  # discard port: nothing listens, a proxied login fails
INSTALLED = adapter.driver_major()


def config_of(**environ: str) -> ProxyConfig:
    return ProxyConfig.from_env(environ=environ)


def driver_params(config: ProxyConfig, **kwargs: Any) -> dict[str, Any]:
    """The parameters connect() hands the driver: connect_kwargs() on 5.x, and on 4.x too."""
    return adapter._connect_kwargs(config, kwargs, False)[0]


@pytest.fixture(params=[4, 5], ids=["driver4", "driver5"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend the given driver line is installed (parameter building only)."""
    monkeypatch.setattr(adapter, "driver_major", lambda: request.param)
    return int(request.param)


# -- which host is routed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        ({"account": "xy12345.eu-central-1"}, f"https://{SNOWFLAKE_HOST}"),
        ({"account": "xy12345", "region": "eu-central-1"}, f"https://{SNOWFLAKE_HOST}"),
        ({"account": SNOWFLAKE_HOST}, f"https://{SNOWFLAKE_HOST}"),
        (
            {"account": "a", "host": "localhost", "port": 8080, "protocol": "http"},
            "http://localhost:8080",
        ),
        ({"account": "a", "host": "::1", "port": 8443}, "https://[::1]:8443"),
    ],
)
def test_account_url(kwargs: dict[str, Any], url: str) -> None:
    assert adapter.account_url(**kwargs) == url


def test_account_url_needs_an_account_or_a_host() -> None:
    with pytest.raises(TargetError):
        adapter.account_url(user="me")


@pytest.mark.parametrize(
    ("no_proxy", "value"),
    [
        (".Example.com,*.corp.internal,db.internal", "example.com,corp.internal,db.internal"),
        ("10.0.0.0/8,[2001:db8::1],::1", "10.0.0.0/8,2001:db8::1,::1"),
        ("*", "*"),
        # Ports cannot be expressed; unusable entries stay out.
        ("api.example.com:8443,a.b/c,*.x*.com,ok.com", "ok.com"),
        ("ok.com,OK.com.", "ok.com"),
    ],
)
def test_no_proxy_value_is_the_drivers_form(no_proxy: str, value: str) -> None:
    assert adapter.no_proxy_value(NoProxy.parse(no_proxy)) == value


# -- connect_kwargs per driver line ------------------------------------------------------


def test_http_proxy_becomes_explicit_parameters(driver: int) -> None:
    config = config_of(https_proxy=SQUID, no_proxy="localhost,.internal")
    params = driver_params(config, account="xy12345.eu-central-1", user="me")
    expected: dict[str, Any] = {
        "account": "xy12345.eu-central-1",
        "user": "me",
        "proxy_host": "squid.internal",
        "no_proxy": "localhost,internal",
    }
    if driver == 5:
        expected |= {
            "proxy_port": 3128,
            "proxy_scheme": "http",
            "use_proxy_env": False,
            "custom_root_store_path": certifi.where(),
        }
    else:  # and platform detection off (a 4.x connection parameter)
        expected |= {"proxy_port": "3128", "platform_detection_timeout_seconds": 0.0}
    assert params == expected


def test_connect_kwargs_refuses_the_classic_driver(driver: int) -> None:
    config = config_of(https_proxy=SQUID)
    if driver == 5:
        assert adapter.connect_kwargs(config, account="a")["proxy_host"] == "squid.internal"
        return
    with pytest.raises(ConfigError) as caught:
        adapter.connect_kwargs(config, account="a")
    assert caught.value.code == "CP402"
    assert "connect()" in caught.value.fix


@pytest.mark.parametrize(
    ("environ", "rule"),
    [
        # CARTO: Snowflake does not support HTTPS proxies, so it goes direct.
        ({"https_proxy": "https://squid.internal:3129"}, Rule.WAREHOUSE_HTTPS_UNSUPPORTED),
        ({"https_proxy": SQUID, "no_proxy": ".snowflakecomputing.com"}, Rule.NO_PROXY),
        ({"http_proxy": SQUID}, Rule.NO_PROXY_CONFIGURED),  # https target, no HTTPS_PROXY
    ],
)
def test_direct_route_forces_direct_on_5x(driver: int, environ: dict[str, str], rule: Rule) -> None:
    with record_routes() as seen:
        params = driver_params(config_of(**environ), account="xy12345.eu-central-1")
    assert [(r.action, r.rule, r.warehouse) for r in seen] == [
        (Action.DIRECT, rule, Warehouse.SNOWFLAKE)
    ]
    if driver == 5:
        assert params == {
            "account": "xy12345.eu-central-1",
            "use_proxy_env": False,
            "proxy": "",
            "custom_root_store_path": certifi.where(),
        }
    else:  # 4.x has no parameter for "direct": connect() routes every request itself
        assert params == {
            "account": "xy12345.eu-central-1",
            "platform_detection_timeout_seconds": 0.0,
        }


def test_host_is_routed_as_snowflake_even_without_a_snowflake_name(driver: int) -> None:
    config = config_of(http_proxy="https://squid.internal:3129")
    with record_routes() as seen:
        driver_params(config, account="a", host="localhost", port=1, protocol="http")
    assert [(r.rule, r.target.authority) for r in seen] == [
        (Rule.WAREHOUSE_HTTPS_UNSUPPORTED, "localhost:1")
    ]


def test_5x_trusts_certifi_plus_the_extra_ca(driver: int, pki: PKI) -> None:
    config = config_of(NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path))
    params = driver_params(config, account="a")
    if driver == 5:
        with open(params["custom_root_store_path"]) as bundle:
            text = bundle.read()
        assert pki.origin_ca.cert_pem.bytes().decode().strip() in text
        with open(certifi.where()) as roots:
            assert roots.read().strip() in text
        # A root store of the caller's own is left alone.
        mine = driver_params(config, account="a", custom_root_store_path="/ca.pem")
        assert mine["custom_root_store_path"] == "/ca.pem"
    else:  # 4.x has no CA parameter: connect() verifies with the bundle itself
        assert "custom_root_store_path" not in params


@pytest.mark.parametrize(
    "argument",
    [
        {"proxy": "http://p:1"},
        {"proxy_host": "p"},
        {"proxy_port": "1"},
        {"no_proxy": "x"},
        {"use_proxy_env": True},
        {"tls_skip_verify": True},
        {"insecure_mode": True},
        {"verify_certificates": False},
        {"verify_hostname": False},
    ],
)
def test_arguments_that_would_defeat_the_routing_are_refused(argument: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        driver_params(config_of(https_proxy=SQUID), account="a", **argument)
    assert caught.value.code == "CP400"
    assert next(iter(argument)) in caught.value.variable


def test_verification_left_on_is_accepted() -> None:
    params = driver_params(ProxyConfig.direct(), account="a", verify_certificates=True)
    assert params["verify_certificates"] is True


# -- end to end: the installed driver, a fake Snowflake, a real Squid --------------------


@pytest.fixture(scope="module")
def fake_snowflake() -> Iterator[FakeHTTPServer]:
    server = start_fake_snowflake()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fake_snowflake_tls(pki: PKI) -> Iterator[FakeHTTPServer]:
    server = start_fake_snowflake(ca=pki.origin_ca)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(fake_snowflake: FakeHTTPServer) -> FakeHTTPServer:
    fake_snowflake.clear()
    return fake_snowflake


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[LoopbackOnly]:
    """No driver may reach a non-loopback address (Python sockets; see LoopbackOnly)."""
    with LoopbackOnly() as guard:
        yield guard
    assert guard.refused == [], f"a test tried to leave loopback: {guard.refused}"


def login(
    config: ProxyConfig, fake: FakeHTTPServer, host: str = "localhost", login_timeout: int = 10
) -> list[Any]:
    """Log in to the fake, run one query, log out; return the query's rows."""
    # 4.0.0 does not read SNOWFLAKE_DISABLE_PLATFORM_DETECTION; a zero timeout skips the
    # metadata probes on 4.x (not on 5.x, which only obeys the variable). Both measured.
    extra: dict[str, Any] = {"network_timeout": 10, "platform_detection_timeout_seconds": 0.0}
    if INSTALLED >= 5:
        # 5.x warns unless the logout behaviour is chosen explicitly, and has split
        # network_timeout (deprecated) into query_timeout and request_timeout.
        extra = {"enable_server_session_keep_alive_auto_detection": False, "request_timeout": 10}
    conn = adapter.connect(
        config,
        account=ACCOUNT,
        user=USER,
        password=PASSWORD,
        host=host,
        port=fake.port,
        protocol=fake.scheme,
        login_timeout=login_timeout,
        **extra,
    )
    try:
        rows = conn.cursor().execute("select 1").fetchall()
    finally:
        conn.close()
    assert LOGIN_PATH in fake.paths("POST")
    return list(rows)


def assert_not_proxied(squid: Squid, log: SquidLog, host: str) -> None:
    """Fail if Squid saw *host*, once every earlier transaction is logged (sentinel)."""
    with socket.create_connection((LOOPBACK, squid.http_port), timeout=5) as sentinel:
        sentinel.sendall(f"GET http://{DENIED_HOST}/sentinel HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sentinel.recv(64).startswith(b"HTTP/1.1 403")
    log.wait_for(lambda e: e.target.endswith("/sentinel"), what="sentinel")
    assert [e.target for e in log.entries() if e.host == host] == []


HOSTILE_ENVIRONMENTS = {
    "env-no-proxy-star": {"NO_PROXY": "*", "no_proxy": "*"},
    "env-no-proxy-localhost": {"NO_PROXY": "localhost", "no_proxy": "localhost"},
    "env-dead-proxy": {
        "HTTP_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
    },
}


@pytest.mark.integration
@pytest.mark.parametrize("hostile", [None, *HOSTILE_ENVIRONMENTS])
def test_http_proxy_login_goes_through_squid(
    monkeypatch: pytest.MonkeyPatch,
    squid: Squid,
    squid_log: SquidLog,
    fake: FakeHTTPServer,
    hostile: str | None,
) -> None:
    for name, value in HOSTILE_ENVIRONMENTS.get(hostile or "", {}).items():
        monkeypatch.setenv(name, value)
    config = config_of(http_proxy=squid.http_url, https_proxy=squid.http_url)
    assert login(config, fake) == [(1,)]
    entry = squid_log.wait_for(
        lambda e: e.host == "localhost" and LOGIN_PATH in e.target, what="login request"
    )
    assert (entry.method, entry.port, entry.listener_port) == ("POST", fake.port, squid.http_port)
    # Every request of the connection (login, query, logout) went through Squid.
    for path in {r.path for r in fake.requests}:
        squid_log.wait_for(
            lambda e, path=path: e.host == "localhost" and urlsplit(e.target).path == path,
            what=f"request for {path}",
        )


@pytest.mark.integration
@pytest.mark.parametrize("env_proxy", ["squid", "dead"])
def test_https_proxy_login_goes_direct_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
    pki: PKI,
    squid: Squid,
    squid_log: SquidLog,
    fake: FakeHTTPServer,
    env_proxy: str,
) -> None:
    # The environment names a plain proxy the driver could use (Squid, where it would be
    # logged) or one where it would fail: either way the login must go direct.
    value = squid.http_url if env_proxy == "squid" else DEAD_PROXY
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, value)
    config = config_of(
        http_proxy=squid.https_url,
        https_proxy=squid.https_url,
        NODE_EXTRA_CA_CERTS=str(pki.bundle_path),
    )
    with record_routes() as seen:
        assert login(config, fake) == [(1,)]
    assert {r.rule for r in seen} == {Rule.WAREHOUSE_HTTPS_UNSUPPORTED}
    assert_not_proxied(squid, squid_log, "localhost")


@pytest.mark.integration
def test_no_proxy_login_goes_direct_although_the_environment_proxies(
    monkeypatch: pytest.MonkeyPatch,
    squid: Squid,
    squid_log: SquidLog,
    fake: FakeHTTPServer,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, squid.http_url)
    config = config_of(http_proxy=squid.http_url, no_proxy="localhost")
    assert login(config, fake) == [(1,)]
    assert_not_proxied(squid, squid_log, "localhost")


@pytest.mark.integration
@pytest.mark.parametrize("proxied", [True, False], ids=["through-squid", "direct"])
def test_tls_login_trusts_the_extra_ca(
    monkeypatch: pytest.MonkeyPatch,
    pki: PKI,
    squid: Squid,
    squid_log: SquidLog,
    fake_snowflake_tls: FakeHTTPServer,
    proxied: bool,
) -> None:
    # An environment CA bundle that trusts nothing useful: the configuration's CA must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.untrusted_ca_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.untrusted_ca_path))
    fake_snowflake_tls.clear()
    proxy = {"https_proxy": squid.http_url} if proxied else {}
    config = config_of(NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path), **proxy)
    assert login(config, fake_snowflake_tls) == [(1,)]
    if proxied:
        entry = squid_log.wait_for_host("localhost", method="CONNECT")
        assert entry.port == fake_snowflake_tls.port


@pytest.mark.integration
def test_tls_login_without_the_extra_ca_fails(fake_snowflake_tls: FakeHTTPServer) -> None:
    fake_snowflake_tls.clear()
    snowflake_errors = importlib.import_module("snowflake.connector.errors")
    with pytest.raises(snowflake_errors.Error):
        # A certificate error is retried until login_timeout (5.x): keep it short.
        login(ProxyConfig.direct(), fake_snowflake_tls, login_timeout=2)
    assert LOGIN_PATH not in fake_snowflake_tls.paths()
