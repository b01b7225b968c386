"""The classic 4.x driver's routed connection: a routing adapter on every session it opens.

The classic driver sends everything (login, queries, result chunks, OCSP, CRL, stage
transfers, its Azure and GCP metadata probes) through ``requests`` sessions built from one
``HttpConfig``, whose ``adapter_factory`` makes each session's adapter. The connection below
swaps that factory for :class:`RoutingAdapterFactory` as the driver stores it.

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

connection: Any = import_extra("snowflake.connector.connection", "snowflake")
session_manager: Any = import_extra("snowflake.connector.session_manager", "snowflake")

__all__ = ["RoutedSnowflakeConnection", "RoutingAdapter", "RoutingAdapterFactory"]


class RoutingAdapter(session_manager.ProxySupportAdapter):  # type: ignore[misc]
    """Route every request by the configuration; ignore the proxies requests merged.

    The vendored requests merges environment proxies over the session's (``trust_env``), so
    the ``proxies`` handed to :meth:`send` cannot be trusted: they are replaced by the route of
    the request's URL (as Snowflake traffic), and ``verify`` by the configuration's CA bundle.
    """

    # Pickled attributes (requests' own list, plus the configuration).
    __attrs__ = [*session_manager.ProxySupportAdapter.__attrs__, "carto_proxy_config"]  # noqa: RUF012

    def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
        self.carto_proxy_config = config
        super().__init__(**kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Send *request* where its route says, verified with the configuration's CAs."""
        config = self.carto_proxy_config
        route = report_route(
            config,
            request.url,
            adapter="snowflake",
            method=request.method,
            warehouse=Warehouse.SNOWFLAKE,
        )
        scheme = str(request.url).partition(":")[0].lower()
        proxied = route.action is Action.PROXY and route.proxy is not None
        kwargs["proxies"] = {scheme: str(route.proxy)} if proxied else {}
        if kwargs.get("verify", True) is not False:
            kwargs["verify"] = config.ca_bundle_path()
        return super().send(request, *args, **kwargs)


class RoutingAdapterFactory(session_manager.AdapterFactory):  # type: ignore[misc]
    """Make a :class:`RoutingAdapter` for each session of a connection."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config

    def __call__(self, *args: Any, **kwargs: Any) -> RoutingAdapter:
        return RoutingAdapter(self.config, *args, **kwargs)


class RoutedSnowflakeConnection(connection.SnowflakeConnection):  # type: ignore[misc]
    """A 4.x connection whose HTTP configuration always carries the routing adapter."""

    def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
        # Set before the base __init__, which connects straight away.
        self.__dict__["_carto_factory"] = RoutingAdapterFactory(config)
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
