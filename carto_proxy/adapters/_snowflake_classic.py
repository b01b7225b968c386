"""The classic 4.x driver's routed connection: a routing adapter on every session it opens.

The classic driver sends everything (login, queries, result chunks, OCSP, CRL, stage
transfers, its Azure and GCP metadata probes) through ``requests`` sessions built from one
``HttpConfig``, whose ``adapter_factory`` makes each session's adapter. The connection below
swaps that factory for :class:`SnowflakeSessionAdapterFactory` as the driver stores it.

The classes live at module level so that what holds them pickles: result batches
(``cursor.get_result_batches()``) carry a copy of the connection's session manager, and a
batch unpickled in another process fetches its chunk through the same routing adapter.

Importing this module needs snowflake-connector-python 4.x.
"""

from __future__ import annotations

from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Action
from carto_proxy._warehouses import Warehouse
from carto_proxy.adapters._common import import_extra, report_route
from carto_proxy.adapters.urllib3 import request_origin

connection: Any = import_extra("snowflake.connector.connection", "snowflake")
session_manager: Any = import_extra("snowflake.connector.session_manager", "snowflake")

__all__ = ["RoutedSnowflakeConnection", "SnowflakeSessionAdapter", "SnowflakeSessionAdapterFactory"]


class SnowflakeSessionAdapter(session_manager.ProxySupportAdapter):  # type: ignore[misc]
    """Route every request by the configuration; ignore the proxies requests merged.

    The vendored requests merges environment proxies over the session's (``trust_env``), so
    the ``proxies`` handed to :meth:`send` cannot be trusted: they are replaced by the route of
    the request's origin (as Snowflake traffic), and ``verify`` by the configuration's CA
    bundle.
    """

    # Pickled attributes (requests' own list, plus the configuration; the bundle path is a
    # file of this process, found again after unpickling).
    __attrs__ = [*session_manager.ProxySupportAdapter.__attrs__, "carto_proxy_config"]  # noqa: RUF012

    def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
        self.carto_proxy_config = config
        super().__init__(**kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Send *request* where its route says, verified with the configuration's CAs."""
        url = str(request.url)
        # Routed by origin: result chunks are presigned URLs, one per chunk, and routing
        # depends on the scheme, host and port alone.
        route = report_route(
            self.carto_proxy_config,
            request_origin(url),
            adapter="snowflake",
            method=request.method,
            url=url,
            warehouse=Warehouse.SNOWFLAKE,
        )
        scheme = url.partition(":")[0].lower()
        proxied = route.action is Action.PROXY and route.proxy is not None
        kwargs["proxies"] = {scheme: str(route.proxy)} if proxied else {}
        if kwargs.get("verify", True) is not False:
            kwargs["verify"] = self._ca_bundle_path
        return super().send(request, *args, **kwargs)

    @property
    def _ca_bundle_path(self) -> str:
        # Built on first use (it may raise CP305 for a deferred CA file), then kept.
        path: str | None = self.__dict__.get("_carto_ca_bundle_path")
        if path is None:
            path = self.__dict__["_carto_ca_bundle_path"] = self.carto_proxy_config.ca_bundle_path()
        return path


class SnowflakeSessionAdapterFactory(session_manager.AdapterFactory):  # type: ignore[misc]
    """Make a :class:`SnowflakeSessionAdapter` for each session of a connection."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config

    def __call__(self, *args: Any, **kwargs: Any) -> SnowflakeSessionAdapter:
        return SnowflakeSessionAdapter(self.config, *args, **kwargs)


class RoutedSnowflakeConnection(connection.SnowflakeConnection):  # type: ignore[misc]
    """A 4.x connection whose HTTP configuration always carries the routing adapter."""

    def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
        # Set before the base __init__, which connects straight away.
        self.__dict__["_carto_factory"] = SnowflakeSessionAdapterFactory(config)
        super().__init__(**kwargs)

    @property
    def _http_config(self) -> Any:
        return self.__dict__.get("_carto_http_config")

    @_http_config.setter
    def _http_config(self, value: Any) -> None:
        # connect() builds HttpConfig(adapter_factory=ProxySupportAdapterFactory(), ...) and
        # hands it to the session manager right away: swap the factory as it is stored.
        if value is not None:
            value = value.copy_with(adapter_factory=self.__dict__["_carto_factory"])
        self.__dict__["_carto_http_config"] = value
