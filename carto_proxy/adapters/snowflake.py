"""Snowflake connections that follow carto_proxy's routing, for both driver lines.

CARTO's rule: Snowflake works through an ``http://`` proxy; with an ``https://`` proxy it must
go direct (the classic driver cannot tunnel TLS inside TLS, snowflake-connector-python#2356).
The account host is routed once, with ``warehouse=Warehouse.SNOWFLAKE``, and the decision is
handed to the driver as explicit parameters:

* **5.x** (the Rust-core "universal" driver): ``proxy_host``/``proxy_port`` when proxied,
  ``use_proxy_env=False`` and ``proxy=""`` when direct. An explicit proxy makes the driver ignore
  the environment's ``NO_PROXY``, so the configuration's NO_PROXY is passed as ``no_proxy`` in
  the driver's own form. Trust is ``custom_root_store_path``: certifi's roots plus
  ``NODE_EXTRA_CA_CERTS`` (it replaces the driver's roots, so ``SSL_CERT_FILE`` is not read).
  These parameters alone are immune to the environment.
* **4.x** (the classic driver, vendored requests): environment proxies always win over its
  ``proxy_*`` parameters, and it has no CA parameter. :func:`connect` therefore mounts a
  routing adapter on every session of the connection: each request (login, queries, result
  chunks, OCSP) is routed by the configuration, whatever the environment holds, and verified
  with the configuration's CA bundle. :func:`connect_kwargs` alone is *not* environment-proof
  on 4.x.

Both drivers probe cloud metadata servers at login (``169.254.169.254``,
``metadata.google.internal``); only ``SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true`` stops that.
"""

from __future__ import annotations

import functools
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._no_proxy import NoProxy
from carto_proxy._routing import Action, Route
from carto_proxy._warehouses import Warehouse
from carto_proxy.adapters._common import (
    import_extra,
    refuse_arguments,
    report_route,
    resolve_config,
)
from carto_proxy.exceptions import TargetError

snowflake_connector = import_extra("snowflake.connector", "snowflake")

__all__ = ["account_url", "connect", "connect_kwargs", "driver_major", "no_proxy_value"]

_SNOWFLAKE_DOMAIN = ".snowflakecomputing.com"
# Parameters that would let the driver pick its own proxy, or stop verifying certificates.
_REFUSED = (
    "proxy",
    "proxy_host",
    "proxy_port",
    "proxy_user",
    "proxy_password",
    "proxy_scheme",
    "no_proxy",
    "use_proxy_env",
    "allow_empty_proxy",
    "tls_skip_verify",
    "insecure_mode",
)
_NO_VERIFY = ("verify_certificates", "verify_hostname")
_FIX = (
    "remove it: carto_proxy sets the proxy and the CA from the ProxyConfig "
    "(HTTP_PROXY/HTTPS_PROXY, NO_PROXY, NODE_EXTRA_CA_CERTS)"
)


@functools.cache
def driver_major() -> int:
    """Return the installed snowflake-connector-python's major version (4 or 5)."""
    version = import_extra("snowflake.connector.version", "snowflake").VERSION
    return int(version[0])


def account_url(**kwargs: Any) -> str:
    """Return the URL the driver logs in to, from its own parameters.

    ``host`` (with ``protocol``, default ``https``, and ``port``) when given; otherwise
    ``https://<account>.snowflakecomputing.com`` (``region`` inserted for a bare account, as the
    driver does).

    Raises:
        TargetError: neither ``host`` nor ``account`` is given.
    """
    protocol = str(kwargs.get("protocol") or "https").lower()
    host = kwargs.get("host")
    if not host:
        account = str(kwargs.get("account") or "").strip()
        if not account:
            raise TargetError("", "give account= or host= to route a Snowflake connection")
        region = kwargs.get("region")
        if account.lower().endswith(_SNOWFLAKE_DOMAIN):
            host = account
        elif region and "." not in account:
            host = f"{account}.{region}{_SNOWFLAKE_DOMAIN}"
        else:
            host = f"{account}{_SNOWFLAKE_DOMAIN}"
    port = kwargs.get("port")
    authority = f"[{host}]" if ":" in str(host) else str(host)
    return f"{protocol}://{authority}:{port}" if port else f"{protocol}://{authority}"


def no_proxy_value(no_proxy: NoProxy) -> str:
    """Translate a NO_PROXY list into the form both drivers read (``no_proxy=``).

    Names mean the domain and its subdomains (written without a leading dot); ``*``, IP
    addresses (IPv6 unbracketed) and CIDR blocks are kept. Entries with a port are left out,
    because neither driver matches ports; so are entries carto_proxy ignores.
    """
    return ",".join(no_proxy.any_port_entries())


def connect_kwargs(config: ProxyConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Return ``snowflake.connector.connect`` parameters carrying the route of the account host.

    The account host (``host=`` when given, else the account URL) is routed with
    ``warehouse=Warehouse.SNOWFLAKE``. See the module docstring for what each driver line
    receives; on 4.x prefer :func:`connect`, which is immune to environment proxies.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        **kwargs: the driver's own parameters (``account``, ``user``, ``host``…), returned
            with the routing parameters added.

    Raises:
        ConfigError: *kwargs* hold a proxy or certificate-verification parameter.
        TargetError: neither ``account`` nor ``host`` is given.
    """
    return _connect_kwargs(resolve_config(config), kwargs)[0]


def _connect_kwargs(config: ProxyConfig, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Route]:
    refuse_arguments(kwargs, _REFUSED, adapter="snowflake.connect", fix=_FIX)
    # Only False defeats verification; True (the default) is harmless.
    refuse_arguments(
        {name: value for name, value in kwargs.items() if value is False},
        _NO_VERIFY,
        adapter="snowflake.connect",
        fix=_FIX,
    )
    route = report_route(
        config, account_url(**kwargs), adapter="snowflake", warehouse=Warehouse.SNOWFLAKE
    )
    params = dict(kwargs)
    proxied = route.action is Action.PROXY and route.proxy is not None
    if driver_major() >= 5:
        if proxied and route.proxy is not None:
            params.update(
                proxy_host=route.proxy.host,
                proxy_port=route.proxy.port,
                proxy_scheme=route.proxy.scheme,
                use_proxy_env=False,
            )
            if config.no_proxy:
                params["no_proxy"] = no_proxy_value(config.no_proxy)
        else:
            params.update(use_proxy_env=False, proxy="")
        # certifi plus NODE_EXTRA_CA_CERTS, as every adapter trusts; it replaces the driver's
        # roots (so SSL_CERT_FILE is not read). The core's extra_root_store_path would append,
        # but 5.x warns that it is an unknown parameter.
        params.setdefault("custom_root_store_path", config.ca_bundle_path())
    elif proxied and route.proxy is not None:
        params.update(proxy_host=route.proxy.host, proxy_port=str(route.proxy.port))
        if config.no_proxy:
            params["no_proxy"] = no_proxy_value(config.no_proxy)
    return params, route


def connect(config: ProxyConfig | None = None, **kwargs: Any) -> Any:
    """Open a Snowflake connection whose every request follows the configuration.

    On 5.x this is ``snowflake.connector.connect(**connect_kwargs(config, **kwargs))``. On 4.x
    the connection also routes each of its requests itself (environment proxies win over the
    classic driver's parameters) and verifies TLS with the configuration's CA bundle.

    >>> conn = connect(account="xy12345.eu-central-1", user="me", password="…")  # doctest: +SKIP

    Raises:
        ConfigError: *kwargs* hold a proxy or certificate-verification parameter.
        TargetError: neither ``account`` nor ``host`` is given.
    """
    config = resolve_config(config)
    params, _ = _connect_kwargs(config, kwargs)
    if driver_major() >= 5:
        return snowflake_connector.connect(**params)
    return _classic_connection_class()(config, **params)


@functools.cache
def _classic_connection_class() -> type[Any]:
    """Build the 4.x connection class that installs the routing adapter on its sessions."""
    connection = import_extra("snowflake.connector.connection", "snowflake")
    session_manager = import_extra("snowflake.connector.session_manager", "snowflake")
    base_adapter: type[Any] = session_manager.ProxySupportAdapter

    class RoutingAdapter(base_adapter):  # type: ignore[misc]
        """Route every request by the configuration; ignore the proxies requests merged.

        The vendored requests merges environment proxies over the session's (``trust_env``),
        so the ``proxies`` handed to :meth:`send` cannot be trusted: they are replaced by the
        route of the request's URL, and ``verify`` by the configuration's CA bundle.
        """

        def __init__(self, config: ProxyConfig, **kwargs: Any) -> None:
            self._carto_config = config
            super().__init__(**kwargs)

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            route = report_route(
                self._carto_config,
                request.url,
                adapter="snowflake",
                method=request.method,
                warehouse=Warehouse.SNOWFLAKE,
            )
            scheme = str(request.url).partition(":")[0].lower()
            proxied = route.action is Action.PROXY and route.proxy is not None
            kwargs["proxies"] = {scheme: str(route.proxy)} if proxied else {}
            if kwargs.get("verify", True) is not False:
                kwargs["verify"] = self._carto_config.ca_bundle_path()
            return super().send(request, *args, **kwargs)

    class RoutingAdapterFactory(session_manager.AdapterFactory):  # type: ignore[misc, name-defined]
        def __init__(self, config: ProxyConfig) -> None:
            self._config = config

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return RoutingAdapter(self._config, *args, **kwargs)

    base_connection: type[Any] = connection.SnowflakeConnection

    class RoutedSnowflakeConnection(base_connection):  # type: ignore[misc]
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

    return RoutedSnowflakeConnection
