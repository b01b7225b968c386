"""The lab's client paths, each run in a fresh process: ``python -m tests.warehouses.scenarios``.

The process reads its task from ``CARTO_LAB_TASK`` (JSON: the scenario's name and the
configuration's source), records every ``socket.connect`` its Python code makes
(``sys.addaudithook``), runs the scenario with the installed clients and prints one JSON line:
the outcome, the scenario's result, and the addresses Python connected to.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

from carto_proxy import ConfigError, ProxyConfig

TASK = "CARTO_LAB_TASK"
SCENARIOS: dict[str, Callable[[ProxyConfig], Any]] = {}

_connects: list[tuple[str, int]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            _connects.append((str(address[0]), int(address[1])))


def scenario(function: Callable[[ProxyConfig], Any]) -> Callable[[ProxyConfig], Any]:
    SCENARIOS[function.__name__] = function
    return function


# -- BigQuery ------------------------------------------------------------------------------


def _service_account() -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "carto-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "carto@carto-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    # A service account's scoped credentials refresh with oauth2.googleapis.com.
    return service_account.Credentials.from_service_account_info(info).with_always_use_jwt_access(
        False
    )


@scenario
def pandas_read_gbq(config: ProxyConfig) -> Any:
    """pandas-gbq: a query (REST), its destination table (REST), its rows (Storage API)."""
    from carto_proxy.adapters import pandas_gbq

    frame = pandas_gbq.read_gbq(
        "SELECT n, word FROM t",
        config=config,
        project_id="carto-test",
        credentials=_service_account(),
        use_bqstorage_api=True,
        progress_bar_type=None,
    )
    return sorted(frame["word"])


@scenario
def pandas_to_gbq(config: ProxyConfig) -> Any:
    """pandas-gbq: a table lookup, a dataset lookup, a table creation, a load job (upload)."""
    import pandas

    from carto_proxy.adapters import pandas_gbq

    frame = pandas.DataFrame({"n": [1, 2], "word": ["carto", "proxy"]})
    pandas_gbq.to_gbq(
        frame,
        "carto_dw.new_table",
        config=config,
        project_id="carto-test",
        credentials=_service_account(),
        progress_bar=False,
    )
    return "loaded"


@scenario
def bigquery_gce(config: ProxyConfig) -> Any:
    """Application Default Credentials on GCE: the metadata server, then REST."""
    from carto_proxy.adapters import bigquery

    with bigquery.client(config) as client:
        return [client.project, len(list(client.list_datasets()))]


@scenario
def bigquery_credentials_without_project(config: ProxyConfig) -> Any:
    """``credentials=`` (GCE) without ``project=``: project and universe from the metadata."""
    from google.auth import compute_engine

    from carto_proxy.adapters import bigquery

    with bigquery.client(config, credentials=compute_engine.Credentials()) as client:
        return [client.project, len(list(client.list_datasets()))]


# -- Snowflake -----------------------------------------------------------------------------

ACCOUNT = "xy12345.eu-central-1"


def _snowflake_params() -> dict[str, Any]:
    from carto_proxy.adapters import snowflake

    params: dict[str, Any] = {"user": "carto", "password": "not-a-secret", "login_timeout": 20}
    if snowflake.driver_major() >= 5:
        params |= {"enable_server_session_keep_alive_auto_detection": False, "request_timeout": 20}
    else:  # OCSP through the cache server, fail-open (the stand-in answers nonsense)
        params |= {"network_timeout": 20, "ocsp_fail_open": True}
    return params


def _query(connection: Any) -> list[Any]:
    try:
        return [row[0] for row in connection.cursor().execute("select n").fetchall()]
    finally:
        connection.close()


@scenario
def snowflake_query(config: ProxyConfig) -> Any:
    """Login, a query whose second chunk is on cloud storage, logout."""
    from carto_proxy.adapters import snowflake

    return _query(snowflake.connect(config, account=ACCOUNT, **_snowflake_params()))


@scenario
def snowflake_platform_detection(config: ProxyConfig) -> Any:
    """Login with platform detection on: the drivers probe the metadata servers."""
    from carto_proxy.adapters import snowflake

    connection = snowflake.connect(
        config, account=ACCOUNT, platform_detection=True, **_snowflake_params()
    )
    return _query(connection)


@scenario
def snowflake_crl(config: ProxyConfig) -> Any:
    """5.x CRL checking: the driver's own CRL client."""
    from carto_proxy.adapters import snowflake

    connection = snowflake.connect(
        config, account=ACCOUNT, crl_check_mode="ENABLED", **_snowflake_params()
    )
    return _query(connection)


@scenario
def snowflake_result_batches(config: ProxyConfig) -> Any:
    """Result batches pickled and fetched in another process, without a connection."""
    from carto_proxy.adapters import snowflake

    connection = snowflake.connect(config, account=ACCOUNT, **_snowflake_params())
    try:
        cursor = connection.cursor().execute("select n")
        batches = cursor.get_result_batches()
    finally:
        connection.close()
    code = (
        "import pickle, sys; batches = pickle.load(sys.stdin.buffer); "
        "print(sorted(int(row[0]) for batch in batches for row in batch.create_iter()))"
    )
    worker = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(batches), capture_output=True, timeout=60
    )
    if worker.returncode:
        raise RuntimeError(f"the worker failed: {worker.stderr.decode()[-1500:]}")
    return json.loads(worker.stdout)


@scenario
def snowflake_sqlalchemy(config: ProxyConfig) -> Any:
    """snowflake-sqlalchemy: an engine from create_engine(), one query."""
    import sqlalchemy

    from carto_proxy.adapters import snowflake

    params = _snowflake_params()
    url = f"snowflake://{params.pop('user')}:{params.pop('password')}@{ACCOUNT}/"
    engine = snowflake.create_engine(url, config=config, connect_args=params)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(sqlalchemy.text("select n"))]
    finally:
        engine.dispose()


@scenario
def snowflake_connect_kwargs(config: ProxyConfig) -> Any:
    """The driver's own connect() with connect_kwargs() (5.x; refused on 4.x)."""
    import snowflake.connector

    from carto_proxy.adapters import snowflake as adapter

    params = adapter.connect_kwargs(config, account=ACCOUNT, **_snowflake_params())
    return _query(snowflake.connector.connect(**params))


def main() -> None:
    task = json.loads(os.environ[TASK])
    sys.addaudithook(_audit)
    warnings.simplefilter("ignore")  # pandas-gbq and the drivers warn about their futures
    outcome: dict[str, Any] = {"ok": True}
    try:
        source = task["config"]
        config = ProxyConfig.from_env() if source is None else ProxyConfig.from_env(environ=source)
        outcome["result"] = SCENARIOS[task["scenario"]](config)
    except ConfigError as error:
        outcome = {"ok": False, "error": "ConfigError", "code": error.code, "message": str(error)}
    except Exception as error:  # reported to the test, which shows it
        outcome = {"ok": False, "error": type(error).__name__, "message": str(error)[:2000]}
    outcome["connects"] = _connects
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
