"""carto_proxy.adapters.bigquery: REST, token refresh and Storage reads, proven through Squid.

The REST API is a local fake (``client_options={"api_endpoint": ...}``), the token endpoint
another one, and the Storage Read API a local gRPC stand-in; all of them are reached under the
name ``api.example.test``, which only Squid can resolve (its hosts_file), so a request that
reaches them went through Squid.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carto_proxy import Action, ConfigError, MissingExtraError, ProxyConfig, Rule
from carto_proxy.testing import record_routes
from tests.support.fake_bigquery import (
    ACCESS_TOKEN,
    DATASETS,
    PROJECT,
    QUERY_ROWS,
    bigquery_routes,
    token_routes,
)
from tests.support.names import API_HOST
from tests.support.origins import FakeHTTPServer
from tests.support.pki import PKI
from tests.support.squid import Squid, SquidLog

pytest.importorskip("google.cloud.bigquery")
pytest.importorskip("google.cloud.bigquery_storage_v1")
grpc = pytest.importorskip("grpc")

from google.api_core.client_options import ClientOptions  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud.bigquery_storage_v1 import types  # noqa: E402

from carto_proxy.adapters import bigquery as adapter  # noqa: E402
from tests.support.grpc_server import READ_ROWS, READ_STREAM_NAME, GrpcServer  # noqa: E402

SQUID = "http://squid.internal:3128"


def config_of(**environ: str) -> ProxyConfig:
    return ProxyConfig.from_env(environ=environ)


# -- servers -----------------------------------------------------------------------------


def over_tls(pki: PKI, routes: list[Any], name: str) -> FakeHTTPServer:
    """A fake server that answers over TLS with the origin certificate."""
    return FakeHTTPServer(routes, ca=pki.origin_ca, name=name)


@pytest.fixture(scope="module")
def bigquery_api(pki: PKI) -> Iterator[FakeHTTPServer]:
    """The fake REST API over TLS."""
    with over_tls(pki, bigquery_routes(), "bigquery") as server:
        yield server


@pytest.fixture(scope="module")
def bigquery_plain() -> Iterator[FakeHTTPServer]:
    """The fake REST API over plain HTTP."""
    with FakeHTTPServer(bigquery_routes(), name="bigquery-plain") as server:
        yield server


@pytest.fixture(scope="module")
def token_api(pki: PKI) -> Iterator[FakeHTTPServer]:
    """A Google OAuth token endpoint over TLS, on its own port."""
    with over_tls(pki, token_routes(), "oauth2") as server:
        yield server


@pytest.fixture(scope="module")
def storage_server(pki: PKI) -> Iterator[GrpcServer]:
    with GrpcServer(pki.origin_ca, bigquery_storage=True) as server:
        yield server


@pytest.fixture
def api(bigquery_api: FakeHTTPServer) -> FakeHTTPServer:
    bigquery_api.clear()
    return bigquery_api


@pytest.fixture
def storage(storage_server: GrpcServer) -> GrpcServer:
    storage_server.clear()
    return storage_server


def http_proxy_config(squid: Squid, pki: PKI, **more: str) -> ProxyConfig:
    url = squid.http_url
    return config_of(
        http_proxy=url,
        https_proxy=url,
        grpc_proxy=url,
        NODE_EXTRA_CA_CERTS=str(pki.bundle_path),
        **more,
    )


def https_proxy_config(squid: Squid, pki: PKI) -> ProxyConfig:
    # CARTO's HTTPS example: no GRPC_PROXY; gRPC would take HTTPS_PROXY, an https:// one.
    url = squid.https_url
    return config_of(http_proxy=url, https_proxy=url, NODE_EXTRA_CA_CERTS=str(pki.bundle_path))


def bq_client(config: ProxyConfig, server: FakeHTTPServer, **kwargs: Any) -> Any:
    kwargs.setdefault("credentials", AnonymousCredentials())
    return adapter.client(
        config,
        project=PROJECT,
        client_options={"api_endpoint": server.url_for(API_HOST)},
        **kwargs,
    )


# -- REST --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("proxy", ["http", "https"])
def test_list_datasets_and_query_go_through_squid(
    pki: PKI, squid: Squid, squid_log: SquidLog, api: FakeHTTPServer, proxy: str
) -> None:
    config = http_proxy_config(squid, pki) if proxy == "http" else https_proxy_config(squid, pki)
    with record_routes() as seen, bq_client(config, api) as client:
        assert [d.dataset_id for d in client.list_datasets()] == list(DATASETS)
        rows = client.query_and_wait("SELECT n, word FROM t")
        # Three rows over two pages: the second page is fetched over REST too.
        assert [tuple(row.values()) for row in rows] == list(QUERY_ROWS)
    assert api.paths() == [
        f"/bigquery/v2/projects/{PROJECT}/datasets",
        f"/bigquery/v2/projects/{PROJECT}/queries",
        f"/bigquery/v2/projects/{PROJECT}/jobs/job-1",
        f"/bigquery/v2/projects/{PROJECT}/queries/job-1",
    ]
    assert {(r.action, r.target.host) for r in seen} == {(Action.PROXY, API_HOST)}
    listener = squid.http_port if proxy == "http" else squid.https_port
    entry = squid_log.wait_for(
        lambda e: e.host == API_HOST and e.port == api.port and e.listener_port == listener,
        what="CONNECT to the fake BigQuery API",
    )
    assert entry.method == "CONNECT"


@pytest.mark.integration
def test_plain_http_endpoint_is_forwarded_by_squid(
    pki: PKI, squid: Squid, squid_log: SquidLog, bigquery_plain: FakeHTTPServer
) -> None:
    with bq_client(http_proxy_config(squid, pki), bigquery_plain) as client:
        assert len(list(client.list_datasets())) == len(DATASETS)
    entry = squid_log.wait_for_host(API_HOST, method="GET")
    path = f"/bigquery/v2/projects/{PROJECT}/datasets"
    assert entry.target.startswith(bigquery_plain.url_for(API_HOST, path))


@pytest.mark.integration
def test_environment_proxies_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
    pki: PKI,
    squid: Squid,
    squid_log: SquidLog,
    api: FakeHTTPServer,
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.untrusted_ca_path))
    with bq_client(http_proxy_config(squid, pki), api) as client:
        assert len(list(client.list_datasets())) == len(DATASETS)
    squid_log.wait_for_host(API_HOST, method="CONNECT")


def test_default_credentials_are_looked_up_with_routed_requests(
    monkeypatch: pytest.MonkeyPatch, api: FakeHTTPServer
) -> None:
    """ADC may call the metadata server: that lookup must follow the routing too."""
    calls: list[dict[str, Any]] = []

    def fake_default(**kwargs: Any) -> tuple[Any, str]:
        calls.append(kwargs)
        return AnonymousCredentials(), "adc-project"

    monkeypatch.setattr(adapter.google_auth, "default", fake_default)
    config = config_of(https_proxy=SQUID)
    with adapter.client(config, client_options={"api_endpoint": api.url_for(API_HOST)}) as client:
        assert client.project == "adc-project"
    (call,) = calls
    assert tuple(call["scopes"]) == tuple(adapter.bigquery.Client.SCOPE)
    session = call["request"].session
    assert session.trust_env is False
    assert session.get_adapter("https://metadata.google.internal/").carto_proxy_config is config


def test_implicit_storage_client_falls_back_to_rest_without_the_storage_package(
    monkeypatch: pytest.MonkeyPatch, api: FakeHTTPServer
) -> None:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise MissingExtraError("bigquery", "google.cloud.bigquery_storage_v1")

    monkeypatch.setattr(adapter, "read_client", missing)
    with bq_client(config_of(grpc_proxy=SQUID), api) as client:
        assert client._ensure_bqstorage_client() is None


def test_http_argument_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        adapter.client(ProxyConfig.direct(), credentials=AnonymousCredentials(), _http=object())
    assert caught.value.code == "CP400"


# -- token refresh -----------------------------------------------------------------------


def service_account(pki: PKI, token_uri: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account as sa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return sa.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": f"carto@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


@pytest.mark.integration
def test_service_account_token_refresh_goes_through_squid(
    pki: PKI, squid: Squid, squid_log: SquidLog, api: FakeHTTPServer, token_api: FakeHTTPServer
) -> None:
    token_api.clear()
    credentials = service_account(pki, token_api.url_for(API_HOST, "/token"))
    with bq_client(http_proxy_config(squid, pki), api, credentials=credentials) as client:
        assert len(list(client.list_datasets())) == len(DATASETS)
    assert token_api.paths("POST") == ["/token"]
    # The REST call carried the token the refresh got.
    assert api.requests[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    # API_HOST resolves only in Squid: the refresh reached the token endpoint through it.
    squid_log.wait_for(
        lambda e: e.is_connect and e.host == API_HOST and e.port == token_api.port,
        what="CONNECT to the token endpoint",
    )


def test_auth_request_routes_with_the_configuration() -> None:
    request = adapter.auth_request(config_of(https_proxy=SQUID))
    session = request.session
    assert session.trust_env is False
    route = session.get_adapter("https://oauth2.googleapis.com/token").route(
        session.prepare_request(
            __import__("requests").Request("POST", "https://oauth2.googleapis.com/token")
        )
    )
    assert (route.action, str(route.proxy)) == (Action.PROXY, SQUID)


# -- Storage Read API --------------------------------------------------------------------


def read_session(read_client: Any) -> Any:
    return read_client.create_read_session(
        parent=f"projects/{PROJECT}",
        read_session=types.ReadSession(
            table=f"projects/{PROJECT}/datasets/d/tables/t", data_format=types.DataFormat.ARROW
        ),
        max_stream_count=1,
        timeout=10,
    )


def arrow_rows(session: Any, responses: Any) -> list[dict[str, Any]]:
    """Decode ReadRows responses with pyarrow (google-cloud-bigquery-storage's own decoder
    warns that it is deprecated in favour of pandas-gbq)."""
    import pyarrow

    schema = pyarrow.ipc.read_schema(pyarrow.py_buffer(session.arrow_schema.serialized_schema))
    rows: list[dict[str, Any]] = []
    for response in responses:
        batch = pyarrow.ipc.read_record_batch(
            pyarrow.py_buffer(response.arrow_record_batch.serialized_record_batch), schema
        )
        rows += batch.to_pylist()
    return rows


@pytest.mark.integration
def test_storage_read_session_goes_through_squid(
    pki: PKI, squid: Squid, squid_log: SquidLog, storage: GrpcServer
) -> None:
    config = http_proxy_config(squid, pki)
    endpoint = f"{API_HOST}:{storage.tls_port}"
    read_client = adapter.read_client(
        config, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    session = read_session(read_client)
    assert [s.name for s in session.streams] == [READ_STREAM_NAME]
    assert arrow_rows(session, read_client.read_rows(READ_STREAM_NAME, timeout=10)) == list(
        READ_ROWS
    )
    read_client.transport.close()
    assert [c.method.rpartition("/")[2] for c in storage.calls] == ["CreateReadSession", "ReadRows"]
    squid_log.wait_for(
        lambda e: e.is_connect and e.host == API_HOST and e.port == storage.tls_port,
        what="CONNECT to the Storage stand-in",
    )


@pytest.mark.integration
def test_implicit_storage_client_is_routed_too(
    pki: PKI, squid: Squid, squid_log: SquidLog, api: FakeHTTPServer, storage: GrpcServer
) -> None:
    """The Storage client BigQuery creates for itself (to_arrow, DB-API) uses routed channels."""
    with bq_client(http_proxy_config(squid, pki), api) as client:
        options = ClientOptions(api_endpoint=f"{API_HOST}:{storage.tls_port}")
        read_client = client._ensure_bqstorage_client(client_options=options)
        assert read_client is not None
        assert len(read_session(read_client).streams) == 1
        read_client.transport.close()
    squid_log.wait_for(lambda e: e.host == API_HOST and e.port == storage.tls_port)


def test_https_proxy_makes_read_client_refuse(pki: PKI) -> None:
    config = config_of(https_proxy="https://localhost:3129")
    with pytest.raises(ConfigError) as caught:
        adapter.read_client(config, credentials=AnonymousCredentials())
    assert caught.value.variable == "HTTPS_PROXY"
    assert "allow_direct=True" in caught.value.fix
    assert caught.value.code == "CP400"


def test_https_proxy_keeps_bigquery_on_rest(api: FakeHTTPServer) -> None:
    config = config_of(https_proxy="https://localhost:3129")
    with record_routes() as seen, bq_client(config, api) as client:
        assert client._ensure_bqstorage_client() is None
        with pytest.raises(ConfigError):
            client._get_shared_bqstorage_client()
    assert {r.rule for r in seen} == {Rule.GRPC_HTTPS_UNSUPPORTED}


@pytest.mark.integration
def test_allow_direct_reads_storage_directly_under_an_https_proxy(
    pki: PKI, squid: Squid, squid_log: SquidLog, storage: GrpcServer
) -> None:
    config = https_proxy_config(squid, pki)
    read_client = adapter.read_client(
        config,
        credentials=AnonymousCredentials(),
        allow_direct=True,
        client_options={"api_endpoint": f"localhost:{storage.tls_port}"},
    )
    assert len(read_session(read_client).streams) == 1
    read_client.transport.close()
    assert [c.method.rpartition("/")[2] for c in storage.calls] == ["CreateReadSession"]


def test_transport_argument_is_refused() -> None:
    with pytest.raises(ConfigError):
        adapter.read_client(
            ProxyConfig.direct(), credentials=AnonymousCredentials(), transport="grpc"
        )
