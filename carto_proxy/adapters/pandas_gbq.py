"""pandas-gbq's ``read_gbq`` and ``to_gbq`` with every connection following the routing.

pandas-gbq builds BigQuery clients of its own even when it is given one: ``read_gbq`` makes a
second, plain ``bigquery.Client`` to look up the destination table of a query
(``GbqConnector.get_client``), and ``to_gbq`` makes more to create a missing dataset and table
(``_Table``, ``_Dataset``). Plain clients follow the environment's proxy variables, or go
direct when there are none, whatever the configuration says.

:func:`read_gbq` and :func:`to_gbq` call pandas-gbq's own functions with a client from
:func:`carto_proxy.adapters.bigquery.client` (REST, token refresh, Storage API reads routed),
and while they run every client pandas-gbq builds is such a client as well: the two factories
pandas-gbq uses are wrapped once, and the wrappers build routed clients only inside these
calls (a context variable, so other threads and other callers of pandas-gbq are unaffected).

>>> import pandas as pd  # doctest: +SKIP
>>> df = read_gbq("SELECT 1 AS n", project_id="my-project")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy.adapters import bigquery as routed_bigquery
from carto_proxy.adapters._common import import_extra, refusal, refuse_arguments, resolve_config

pandas_gbq = import_extra("pandas_gbq", "pandas-gbq")
gbq_connector: Any = import_extra("pandas_gbq.gbq_connector", "pandas-gbq")

__all__ = ["read_gbq", "to_gbq"]

# pandas-gbq's user-credential flows (a browser or a console prompt, pydata-google-auth) make
# requests of their own that carto_proxy cannot route.
_USER_FLOW = (
    "reauth",
    "auth_local_webserver",
    "auth_redirect_uri",
    "client_id",
    "client_secret",
    "private_key",
)
_USER_FLOW_FIX = (
    "pass credentials= (google-auth credentials, e.g. a service account's) or rely on "
    "Application Default Credentials, which carto_proxy looks up with routed requests"
)
_CLIENT_FIX = (
    "leave bigquery_client out (carto_proxy builds a routed client from project_id and "
    "credentials), or pass one from carto_proxy.adapters.bigquery.client()"
)

_Factory = Callable[[str | None, Any], Any]
_ROUTED_FACTORY: contextvars.ContextVar[_Factory | None] = contextvars.ContextVar(
    "carto_proxy_pandas_gbq_factory", default=None
)


def read_gbq(query: str, *, config: ProxyConfig | None = None, **kwargs: Any) -> Any:
    """Run ``pandas_gbq.read_gbq(query, **kwargs)`` with every connection routed by *config*.

    Args:
        query: the SQL query, or a table ID (``dataset.table``) to download.
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        **kwargs: ``pandas_gbq.read_gbq`` arguments (``project_id``, ``credentials``,
            ``location``, ``use_bqstorage_api``, ``dtypes``…). ``bigquery_client`` must come
            from :func:`carto_proxy.adapters.bigquery.client`; the user-credential flows
            (``reauth``, ``auth_local_webserver``, ``client_id``…) are refused.

    Returns:
        What ``pandas_gbq.read_gbq`` returns: a ``DataFrame`` (a ``Series`` with ``dry_run``).

    Raises:
        ConfigError: an argument would make pandas-gbq connect unrouted.
    """
    with _routed(config, kwargs, "pandas_gbq.read_gbq") as routed:
        return pandas_gbq.read_gbq(query, **routed)


def to_gbq(
    dataframe: Any, destination_table: str, *, config: ProxyConfig | None = None, **kwargs: Any
) -> None:
    """Run ``pandas_gbq.to_gbq(dataframe, destination_table, **kwargs)``, routed by *config*.

    The load (a resumable upload), the table lookup, and the creation of a missing dataset and
    table all go through routed clients.

    Args:
        dataframe: the ``DataFrame`` to write.
        destination_table: ``dataset.table`` or ``project.dataset.table``.
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        **kwargs: ``pandas_gbq.to_gbq`` arguments (``project_id``, ``credentials``,
            ``if_exists``, ``table_schema``, ``location``…), refused as for :func:`read_gbq`.

    Raises:
        ConfigError: an argument would make pandas-gbq connect unrouted.
    """
    with _routed(config, kwargs, "pandas_gbq.to_gbq") as routed:
        pandas_gbq.to_gbq(dataframe, destination_table, **routed)


@contextlib.contextmanager
def _routed(
    config: ProxyConfig | None, kwargs: dict[str, Any], adapter: str
) -> Iterator[dict[str, Any]]:
    """Yield *kwargs* with a routed ``bigquery_client``, while pandas-gbq's factories route."""
    refuse_arguments(kwargs, _USER_FLOW, adapter=adapter, fix=_USER_FLOW_FIX)
    config = resolve_config(config)
    given = kwargs.pop("bigquery_client", None)
    if given is not None and not _is_routed(given):
        raise refusal(
            f"{adapter}(bigquery_client=...)",
            "this client was not built by carto_proxy, so its requests follow the environment",
            _CLIENT_FIX,
        )
    location = kwargs.get("location")
    client: Any = None

    def factory(project: str | None, credentials: Any) -> Any:
        # pandas-gbq asks again for the client it was given (same project and credentials):
        # reuse it, with its endpoint and connection pools.
        if client is not None and client.project == project and client._credentials is credentials:
            return client
        return routed_bigquery.client(
            config, project=project, credentials=credentials, location=location
        )

    client = given or factory(kwargs.get("project_id"), kwargs.get("credentials"))
    _install_factory_hooks()
    token = _ROUTED_FACTORY.set(factory)
    try:
        yield {**kwargs, "bigquery_client": client}
    finally:
        _ROUTED_FACTORY.reset(token)


def _is_routed(client: Any) -> bool:
    return isinstance(client, routed_bigquery._client_class())


@functools.cache
def _install_factory_hooks() -> None:
    """Wrap the two places pandas-gbq builds ``bigquery.Client`` objects (once per process).

    Outside :func:`read_gbq` and :func:`to_gbq` the wrappers call pandas-gbq's originals.
    """
    connector_class = gbq_connector.GbqConnector
    original_get_client = connector_class.get_client
    original_make_client = gbq_connector._get_client

    def get_client(self: Any) -> Any:
        # The table lookup after a query.
        factory = _ROUTED_FACTORY.get()
        if factory is None:
            return original_get_client(self)
        return factory(self.project_id, self.credentials)

    def make_client(
        user_agent: Any, rfc9110_delimiter: Any, project_id: Any, credentials: Any
    ) -> Any:
        # _Table and _Dataset (to_gbq creating a missing table) call this with the
        # connector's credentials.
        factory = _ROUTED_FACTORY.get()
        if factory is None:
            return original_make_client(user_agent, rfc9110_delimiter, project_id, credentials)
        return factory(project_id, credentials)

    connector_class.get_client = get_client
    gbq_connector._get_client = make_client
