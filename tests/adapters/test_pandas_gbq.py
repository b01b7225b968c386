"""carto_proxy.adapters.pandas_gbq: read_gbq and to_gbq, every request through Squid.

The fake BigQuery is reached as ``api.example.test``, a name only Squid resolves: a request
pandas-gbq sent with a client of its own (unrouted) could not reach it. The lab
(``tests/warehouses``) runs the same calls on the real host names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pandas_gbq")

import pandas
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from carto_proxy import ConfigError, ProxyConfig
from carto_proxy.adapters import bigquery as routed_bigquery
from carto_proxy.adapters import pandas_gbq as adapter
from tests.support.fake_bigquery import PROJECT, bigquery_routes
from tests.support.names import API_HOST
from tests.support.origins import FakeHTTPServer
from tests.support.pki import PKI
from tests.support.squid import Squid, SquidLog

# pandas-gbq warns about its own future (user agents, LargeResultsWarning…).
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


@pytest.fixture(scope="module")
def api(pki: PKI) -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer(bigquery_routes(), ca=pki.origin_ca, name="bigquery") as server:
        yield server


def routed_client(squid: Squid, pki: PKI, api: FakeHTTPServer) -> Any:
    environ = {"https_proxy": squid.http_url, "NODE_EXTRA_CA_CERTS": str(pki.bundle_path)}
    return routed_bigquery.client(
        ProxyConfig.from_env(environ=environ),
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": api.url_for(API_HOST)},
    )


@pytest.mark.integration
def test_read_gbq_looks_the_destination_table_up_through_the_proxy(
    pki: PKI, squid: Squid, squid_log: SquidLog, api: FakeHTTPServer
) -> None:
    api.clear()
    with routed_client(squid, pki, api) as client:
        frame = adapter.read_gbq(
            "SELECT n, word FROM t", bigquery_client=client, progress_bar_type=None
        )
    assert list(frame["word"]) == ["carto", "proxy", "tunnel"]
    # The lookup pandas-gbq makes with a client of its own reached the fake too.
    table = f"/bigquery/v2/projects/{PROJECT}/datasets/_t/tables/r"
    assert table in api.paths("GET")
    squid_log.wait_for(lambda e: e.is_connect and e.port == api.port, what="CONNECT")


@pytest.mark.integration
def test_to_gbq_creates_the_table_and_loads_through_the_proxy(
    pki: PKI, squid: Squid, api: FakeHTTPServer
) -> None:
    api.clear()
    frame = pandas.DataFrame({"n": [1, 2], "word": ["carto", "proxy"]})
    with routed_client(squid, pki, api) as client:
        adapter.to_gbq(frame, "carto_dw.new_table", bigquery_client=client, progress_bar=False)
    base = f"/bigquery/v2/projects/{PROJECT}"
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"{base}/datasets/carto_dw/tables/new_table"),  # to_gbq: does it exist?
        ("GET", f"{base}/datasets/carto_dw/tables/new_table"),  # _Table.create: exists()
        ("GET", f"{base}/datasets/carto_dw"),  # _Dataset.exists()
        ("POST", f"{base}/datasets/carto_dw/tables"),  # create_table
        ("POST", f"/upload{base}/jobs"),  # the load job's upload
    ]


@pytest.mark.parametrize(
    "argument",
    [
        {"reauth": True},
        {"auth_local_webserver": False},
        {"client_id": "x"},
        {"private_key": "x"},
        {"bigquery_client": bigquery.Client(project="p", credentials=AnonymousCredentials())},
    ],
)
def test_unroutable_arguments_are_refused(argument: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        adapter.read_gbq("SELECT 1", config=ProxyConfig.direct(), **argument)
    assert caught.value.code == "CP400"
    assert next(iter(argument)) in caught.value.variable


def test_pandas_gbq_is_left_as_it_was_outside_the_adapter(api: FakeHTTPServer) -> None:
    from pandas_gbq.gbq_connector import GbqConnector

    adapter._install_factory_hooks()  # as after any call of the adapter
    plain = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials())
    connector = GbqConnector(PROJECT, bigquery_client=plain)
    client = connector.get_client()
    assert type(client) is bigquery.Client  # pandas-gbq's own, not a routed one
