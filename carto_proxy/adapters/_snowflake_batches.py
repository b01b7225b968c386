"""5.x result batches that stay routed when they are fetched away from their connection.

``cursor.get_result_batches()`` hands out ``ResultBatch`` objects meant for workers: pickled,
sent elsewhere, fetched there. A batch fetched without a connection downloads its chunk with a
client the Rust core builds on the spot, with no proxy setting (so the environment's) and the
default CA roots (snowflakedb/drivers ``database_driver_v1/database.rs``,
``create_tls_client_with_config(TlsConfig::default())``).

The connection :func:`carto_proxy.adapters.snowflake.connect` returns on 5.x hands out
:class:`RoutedResultBatch` objects instead. They carry the configuration (it pickles), and one
fetched without a connection downloads its chunk itself, through
:mod:`carto_proxy.adapters.requests` (the route of the chunk's URL, as Snowflake traffic, and
the configuration's CAs), then lets the core decode the bytes as an inline chunk,
which needs no network. With a connection, or in the process that made it, a batch fetches as
the driver's own do: through the connection, which is routed.

Importing this module needs snowflake-connector-python 5.x.
"""

from __future__ import annotations

import base64
import functools
import gzip
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._warehouses import Warehouse
from carto_proxy.adapters import requests as routed_requests
from carto_proxy.adapters._common import import_extra
from carto_proxy.exceptions import ConfigError

connection_module: Any = import_extra("snowflake.connector.connection", "snowflake")
cursor_module: Any = import_extra("snowflake.connector.cursor", "snowflake")
requests: Any = import_extra("requests", "snowflake")
result_batch: Any = import_extra("snowflake.connector.result_batch", "snowflake")
# The driver's protocol messages, for the chunk format (a module-level protobuf enum).
protocol: Any = import_extra(
    "snowflake.connector._internal.protobuf_gen.database_driver_v1_pb2", "snowflake"
)

__all__ = ["RoutedConnection", "RoutedResultBatch"]

# (connect, read) seconds for a chunk download; the core's own client allows about as long.
_CHUNK_TIMEOUT = (10.0, 300.0)
_GZIP_MAGIC = b"\x1f\x8b"


class SnowflakeRoutingAdapter(routed_requests.RoutingAdapter):
    """Route as Snowflake traffic, as the connection routes its own chunk downloads."""

    _reported_as = "snowflake"
    _warehouse = Warehouse.SNOWFLAKE


def _chunk_session(config: ProxyConfig) -> Any:
    http = requests.Session()
    adapter = SnowflakeRoutingAdapter(config)
    for prefix in ("http://", "https://"):
        http.mount(prefix, adapter)
    http.trust_env = False
    return http


class RoutedResultBatch(result_batch.ResultBatch):  # type: ignore[misc]
    """A ``ResultBatch`` that downloads through the routing when it has no connection."""

    carto_proxy_config: ProxyConfig

    @classmethod
    def adopt(cls, batch: Any, config: ProxyConfig) -> RoutedResultBatch:
        """The same batch (chunk, columns, connection) as a routed one."""
        routed: RoutedResultBatch = cls.__new__(cls)
        routed.__setstate__(batch.__getstate__())
        routed._connection = batch._connection
        routed.carto_proxy_config = config
        return routed

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state["carto_proxy_config"] = self.carto_proxy_config
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.carto_proxy_config = state.pop("carto_proxy_config", None)
        super().__setstate__(state)

    def _fetch_arrow_stream_ptr(self, connection: Any = None) -> int:
        if connection is not None or not self._chunk.HasField("remote"):
            return int(super()._fetch_arrow_stream_ptr(connection))
        response = result_batch.core_driver.database_fetch_chunk(
            conn_handle=None, chunk=self._inline_chunk(), columns=self._columns
        )
        return int(result_batch.get_stream_ptr(response))

    def _inline_chunk(self) -> Any:
        """Download the remote chunk through the routing; return it as an inline chunk."""
        chunk = self._chunk
        if chunk.format != protocol.CHUNK_FORMAT_ARROW_IPC:
            raise ConfigError(
                "ResultBatch.to_arrow(connection=None) on a JSON result chunk",
                None,
                "the driver can decode only Arrow chunks it did not download itself, and its "
                "own download would follow the environment's proxy and the default CAs",
                "pass connection= (a connection from carto_proxy.adapters.snowflake.connect()) "
                "to create_iter(), to_arrow() or to_pandas(), or query with the Arrow result "
                "format (the default)",
                code="CP402",
            )
        with _chunk_session(self.carto_proxy_config) as http:
            reply = http.get(
                chunk.remote.url, headers=dict(chunk.remote.headers), timeout=_CHUNK_TIMEOUT
            )
            reply.raise_for_status()
            data = reply.content
        if data.startswith(_GZIP_MAGIC):  # stored gzipped without Content-Encoding (GCS)
            data = gzip.decompress(data)
        return result_batch.ResultChunk(
            format=chunk.format,
            inline=base64.b64encode(data).decode("ascii"),
            row_count=chunk.row_count,
        )


class RoutedConnection(connection_module.Connection):  # type: ignore[misc]
    """A 5.x connection whose cursors hand out :class:`RoutedResultBatch` objects."""

    def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
        self.carto_proxy_config = config
        super().__init__(**kwargs)

    def cursor(self, cursor_class: Any = None) -> Any:
        """Return a cursor (of *cursor_class*) whose result batches stay routed."""
        base = cursor_class or getattr(self, "_default_cursor_class", cursor_module.SnowflakeCursor)
        return super().cursor(_routed_cursor_class(base))


@functools.cache
def _routed_cursor_class(base: type[Any]) -> type[Any]:
    """*base* (``SnowflakeCursor``, ``DictCursor``…) with routed ``get_result_batches()``."""

    def get_result_batches(self: Any) -> list[RoutedResultBatch] | None:
        batches = base.get_result_batches(self)
        if batches is None:
            return None
        config = self.connection.carto_proxy_config
        return [RoutedResultBatch.adopt(batch, config) for batch in batches]

    return type(f"Routed{base.__name__}", (base,), {"get_result_batches": get_result_batches})
