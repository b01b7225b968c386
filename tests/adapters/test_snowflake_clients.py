"""carto_proxy.adapters.snowflake: the drivers' own clients, result batches, SQLAlchemy.

Runs against the installed driver (5.x in ``tests``, 4.x in ``snowflake_classic``); the
parameter tests pretend either line. Where each connection goes is proven in the lab
(``tests/warehouses``); these tests pin the decisions.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from carto_proxy import ConfigError, ProxyConfig
from carto_proxy.testing import LocalOrigin
from tests.adapters.http_cases import closed_port
from tests.support.fake_snowflake import (
    ACCOUNT,
    LOGIN_PATH,
    PASSWORD,
    USER,
    gzipped_chunk,
    start_fake_snowflake,
)
from tests.support.origins import FakeHTTPServer

pytest.importorskip("snowflake.connector")

from carto_proxy.adapters import snowflake as adapter
from carto_proxy.adapters._snowflake_side_clients import DETECTION_SWITCH

pytestmark = pytest.mark.snowflake

SQUID = "http://squid.internal:3128"
INSTALLED = adapter.driver_major()


@pytest.fixture(params=[4, 5], ids=["driver4", "driver5"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(adapter, "driver_major", lambda: request.param)
    return int(request.param)


def params(config: ProxyConfig, *, platform_detection: bool = False, **kwargs: Any) -> Any:
    return adapter._connect_kwargs(config, {"account": "a", **kwargs}, platform_detection)[0]


def environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name.upper(), value)
        monkeypatch.setenv(name.lower(), value)


# -- platform detection ------------------------------------------------------------------


def test_platform_detection_is_off_by_default(driver: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DETECTION_SWITCH)
    built = params(ProxyConfig.direct())
    if driver == 5:  # the driver's only switch is the process variable
        assert os.environ[DETECTION_SWITCH] == "true"
        assert "platform_detection_timeout_seconds" not in built
    else:
        assert built["platform_detection_timeout_seconds"] == 0.0
        assert DETECTION_SWITCH not in os.environ


def test_a_detection_timeout_without_opting_in_is_refused(driver: int) -> None:
    with pytest.raises(ConfigError) as caught:
        params(ProxyConfig.direct(), platform_detection_timeout_seconds=1.0)
    assert caught.value.code == "CP402"
    assert "platform_detection=True" in caught.value.fix


def test_opting_in_needs_the_environment_to_agree_with_the_route(
    driver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ProxyConfig.from_env(environ={"http_proxy": SQUID, "https_proxy": SQUID})
    # The environment has no proxy: the probes would go direct, the route says the proxy.
    with pytest.raises(ConfigError) as caught:
        params(config, platform_detection=True)
    assert caught.value.code == "CP402"
    assert "http://169.254.169.254" in caught.value.problem
    assert "through http://squid.internal:3128" in caught.value.problem
    environment(monkeypatch, http_proxy=SQUID, https_proxy=SQUID)
    built = params(config, platform_detection=True)
    assert "platform_detection_timeout_seconds" not in built  # the driver's default


def test_an_unusable_environment_refuses_opting_in(monkeypatch: pytest.MonkeyPatch) -> None:
    environment(monkeypatch, https_proxy="socks5://p:1080")
    with pytest.raises(ConfigError) as caught:
        params(ProxyConfig.direct(), platform_detection=True)
    assert caught.value.code == "CP402"


# -- CRL (5.x downloads them with a client of its own) -----------------------------------


@pytest.mark.parametrize("mode", ["ENABLED", "advisory"])
def test_crl_checks_on_5x_need_the_environment_to_agree(
    driver: int, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    config = ProxyConfig.from_env(environ={"http_proxy": SQUID, "no_proxy": "localhost"})
    if driver == 4:  # 4.x fetches CRLs through the connection's routed sessions
        assert params(config, crl_check_mode=mode)["crl_check_mode"] == mode
        return
    with pytest.raises(ConfigError) as caught:
        params(config, crl_check_mode=mode)
    assert (caught.value.code, "crl_check_mode" in caught.value.variable) == ("CP402", True)
    environment(monkeypatch, http_proxy=SQUID, no_proxy="localhost")
    assert params(config, crl_check_mode=mode)["crl_check_mode"] == mode
    assert params(config, crl_check_mode="DISABLED")["crl_check_mode"] == "DISABLED"


# -- result batches: pickled with the routing --------------------------------------------


@pytest.fixture(scope="module")
def chunk_store() -> Iterator[LocalOrigin]:
    body = gzipped_chunk()
    with LocalOrigin(host="127.0.0.1") as origin:
        origin.respond_with(lambda request: (200, {"Content-Type": "binary/octet-stream"}, body))
        yield origin


@pytest.fixture(scope="module")
def arrow_snowflake(chunk_store: LocalOrigin) -> Iterator[FakeHTTPServer]:
    server = start_fake_snowflake(chunk_url=f"http://127.0.0.1:{chunk_store.port}/chunk_0")
    try:
        yield server
    finally:
        server.stop()


def connect(config: ProxyConfig, fake: FakeHTTPServer, **kwargs: Any) -> Any:
    extra: dict[str, Any] = {"network_timeout": 10}
    if INSTALLED >= 5:
        extra = {"enable_server_session_keep_alive_auto_detection": False, "request_timeout": 10}
    return adapter.connect(
        config,
        account=ACCOUNT,
        user=USER,
        password=PASSWORD,
        host="localhost",
        port=fake.port,
        protocol="http",
        login_timeout=10,
        **extra,
        **kwargs,
    )


def test_result_batches_pickle_with_the_routing_and_fetch_without_a_connection(
    arrow_snowflake: FakeHTTPServer, chunk_store: LocalOrigin
) -> None:
    config = ProxyConfig.from_env(environ={"no_proxy": "localhost"})
    connection = connect(config, arrow_snowflake)
    try:
        batches = connection.cursor().execute("select n").get_result_batches()
    finally:
        connection.close()
    chunk_store.clear()
    chunk_store.respond_with(
        lambda request: (200, {"Content-Type": "binary/octet-stream"}, gzipped_chunk())
    )
    copies = pickle.loads(pickle.dumps(batches))
    assert [type(copy) for copy in copies] == [type(batch) for batch in batches]
    rows = [int(row[0]) for batch in copies for row in batch.create_iter()]
    assert rows == [1, 2, 3, 4]
    assert [request.path for request in chunk_store.requests] == ["/chunk_0"]


@pytest.mark.skipif(INSTALLED < 5, reason="result batches fetch by themselves on 5.x only")
def test_a_detached_chunk_download_is_sent_as_the_requests_adapter_sends(
    chunk_store: LocalOrigin,
) -> None:
    from carto_proxy.adapters._snowflake_batches import _chunk_session

    with _chunk_session(ProxyConfig.direct()) as http:
        with pytest.raises(ConfigError, match=r"verify=False"):
            http.get(f"http://127.0.0.1:{chunk_store.port}/detached", verify=False, timeout=5)
        # Chunk headers come from the server: a Proxy-Authorization among them goes nowhere.
        http.get(
            f"http://127.0.0.1:{chunk_store.port}/detached",
            headers={"Proxy-Authorization": "Basic eDp5"},
            timeout=5,
        )
        with pytest.raises(requests.ConnectionError) as refused:
            http.get(f"http://127.0.0.1:{closed_port()}/chunk_1", timeout=5)
    sent = [request for request in chunk_store.requests if request.path == "/detached"]
    assert [request.headers.get("proxy-authorization") for request in sent] == [None]
    assert "[carto_proxy: http://127.0.0.1:" in str(refused.value)
    assert ", rule " in str(refused.value)


@pytest.mark.skipif(INSTALLED >= 5, reason="the classic driver's sessions (4.x)")
def test_4x_sessions_route_by_origin_and_build_the_ca_bundle_once(
    chunk_store: LocalOrigin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.connector.vendored import requests as vendored

    from carto_proxy.adapters._snowflake_classic import SnowflakeSessionAdapter

    built: list[str] = []
    bundle_path = ProxyConfig.ca_bundle_path
    monkeypatch.setattr(
        ProxyConfig, "ca_bundle_path", lambda self: built.append("path") or bundle_path(self)
    )
    config = ProxyConfig.from_env(environ={"no_proxy": "localhost"})
    known = set(config._routes)
    with vendored.Session() as http:
        http.mount("http://", SnowflakeSessionAdapter(config))
        # Presigned chunk URLs: a path and a signature of their own each.
        replies = [
            http.get(
                f"http://127.0.0.1:{chunk_store.port}/chunk_{n}?X-Amz-Signature=s{n}", timeout=5
            )
            for n in range(3)
        ]
    assert [reply.status_code for reply in replies] == [200] * 3
    assert built == ["path"]
    cached = [str(key) for key in config._routes if key not in known]
    assert len(cached) == 1  # one route for the origin, not one per chunk
    assert f"127.0.0.1:{chunk_store.port}" in cached[0]
    assert "chunk_" not in cached[0]


# -- SQLAlchemy --------------------------------------------------------------------------


def test_create_engine_opens_connections_with_connect(arrow_snowflake: FakeHTTPServer) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("snowflake.sqlalchemy")
    arrow_snowflake.clear()
    url = f"snowflake://{USER}:{PASSWORD}@{ACCOUNT}/"
    query = {"host": "localhost", "port": arrow_snowflake.port, "protocol": "http"}
    engine = adapter.create_engine(url, config=ProxyConfig.direct(), connect_args=query)
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            rows = connection.execute(sqlalchemy.text("select n")).fetchall()
    finally:
        engine.dispose()
    assert [row[0] for row in rows] == [1, 2, 3, 4]
    assert type(raw).__module__.startswith("carto_proxy.adapters")  # opened by connect()
    assert LOGIN_PATH in arrow_snowflake.paths("POST")


def test_create_engine_refuses_a_creator() -> None:
    pytest.importorskip("snowflake.sqlalchemy")
    with pytest.raises(ConfigError) as caught:
        adapter.create_engine("snowflake://u:p@a/", config=ProxyConfig.direct(), creator=object)
    assert caught.value.code == "CP400"
