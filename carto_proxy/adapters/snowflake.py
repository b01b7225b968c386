"""Snowflake connections that follow carto_proxy's routing, for both driver lines.

CARTO's rule: Snowflake works through an ``http://`` proxy; with an ``https://`` proxy it must
go direct (the classic driver cannot tunnel TLS inside TLS, snowflake-connector-python#2356).
Every connection a driver opens (the account host, result chunks and stage files on cloud
storage, OCSP and CRL servers) is routed as Snowflake traffic, ``warehouse=Warehouse.SNOWFLAKE``:

* **5.x** (the Rust-core "universal" driver): the account host's route becomes explicit
  parameters, ``proxy_host``/``proxy_port`` when proxied, ``use_proxy_env=False`` and
  ``proxy=""`` when direct. An explicit proxy makes the driver ignore the environment's
  ``NO_PROXY``, so the configuration's NO_PROXY is passed as ``no_proxy`` in the driver's own
  form. Trust is ``custom_root_store_path``: certifi's roots plus ``NODE_EXTRA_CA_CERTS`` (it
  replaces the driver's roots, so ``SSL_CERT_FILE`` is not read). Result batches handed to
  other processes download through the routing too (see ``_snowflake_batches``).
* **4.x** (the classic driver, vendored requests): environment proxies always win over its
  ``proxy_*`` parameters, and it has no CA parameter. :func:`connect` therefore mounts a
  routing adapter on every session of the connection (login, queries, result chunks, stage
  transfers, OCSP, CRL), verified with the configuration's CA bundle; :func:`connect_kwargs`
  cannot do that and refuses.

Both drivers also have HTTP clients of their own that no parameter routes (platform
detection's metadata-server probes; 5.x's CRL downloads): platform detection is off unless
``platform_detection=True``, and a driver client that would not follow the route is refused
with a :class:`~carto_proxy.ConfigError` (``CP402``). See ``_snowflake_side_clients``.
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
    refusal,
    refuse_arguments,
    report_route,
    resolve_config,
)
from carto_proxy.adapters._snowflake_side_clients import close_side_clients
from carto_proxy.exceptions import ConfigError, TargetError

snowflake_connector = import_extra("snowflake.connector", "snowflake")

__all__ = [
    "account_url",
    "connect",
    "connect_kwargs",
    "create_engine",
    "driver_major",
    "no_proxy_value",
]

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


def connect_kwargs(
    config: ProxyConfig | None = None, *, platform_detection: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """Return ``snowflake.connector.connect`` parameters that route every connection (5.x).

    The account host (``host=`` when given, else the account URL) is routed with
    ``warehouse=Warehouse.SNOWFLAKE``; see the module docstring for what the driver receives.
    For ``snowflake.connector.aio.connect(**connect_kwargs(...))`` and other callers of the
    driver's own ``connect``. As :func:`connect` does, it turns platform detection off, which
    on 5.x means setting ``SNOWFLAKE_DISABLE_PLATFORM_DETECTION=true`` in the process
    environment (the driver's only switch; it reads it at the first login of the process).

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        platform_detection: let the driver probe the cloud metadata servers at login.
        **kwargs: the driver's own parameters (``account``, ``user``, ``host``…), returned
            with the routing parameters added.

    Raises:
        ConfigError: *kwargs* hold a proxy or certificate-verification parameter (``CP400``);
            the driver is 4.x, whose environment proxies win over any parameter (use
            :func:`connect`); a driver's own client would not follow the route (``CP402``).
        TargetError: neither ``account`` nor ``host`` is given.
    """
    if driver_major() < 5:
        raise ConfigError(
            "snowflake.connect_kwargs() with snowflake-connector-python 4.x",
            None,
            "the classic driver lets the environment's proxy variables win over its proxy "
            "parameters, so these parameters cannot route its connections",
            "use carto_proxy.adapters.snowflake.connect() (or create_engine() for SQLAlchemy), "
            "which routes each request of the connection itself",
            code="CP402",
        )
    return _connect_kwargs(resolve_config(config), kwargs, platform_detection)[0]


def _connect_kwargs(
    config: ProxyConfig, kwargs: dict[str, Any], platform_detection: bool
) -> tuple[dict[str, Any], Route]:
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
    close_side_clients(config, params, major=driver_major(), platform_detection=platform_detection)
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


def connect(
    config: ProxyConfig | None = None, *, platform_detection: bool = False, **kwargs: Any
) -> Any:
    """Open a Snowflake connection whose every connection follows the configuration.

    On 5.x the driver gets the routing parameters of :func:`connect_kwargs`, and its result
    batches stay routed when fetched in another process. On 4.x the connection routes each of
    its requests itself (environment proxies win over the classic driver's parameters) and
    verifies TLS with the configuration's CA bundle; its result batches pickle with the routing.

    >>> conn = connect(account="xy12345.eu-central-1", user="me", password="…")  # doctest: +SKIP

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        platform_detection: let the driver probe the cloud metadata servers at login
            (``169.254.169.254``, ``metadata.google.internal``, AWS STS). Off by default: the
            probes use clients of the driver's own that follow the process environment, so
            opting in is refused unless the environment would send them where the route says.
        **kwargs: the driver's own parameters (``account``, ``user``, ``password``, ``host``…).

    Raises:
        ConfigError: *kwargs* hold a proxy or certificate-verification parameter (``CP400``),
            or a driver's own client would not follow the route (``CP402``).
        TargetError: neither ``account`` nor ``host`` is given.
    """
    config = resolve_config(config)
    params, _ = _connect_kwargs(config, kwargs, platform_detection)
    if driver_major() >= 5:
        from carto_proxy.adapters._snowflake_batches import RoutedConnection

        return RoutedConnection(config, **params)
    from carto_proxy.adapters._snowflake_classic import RoutedSnowflakeConnection

    return RoutedSnowflakeConnection(config, **params)


def create_engine(url: Any, *, config: ProxyConfig | None = None, **kwargs: Any) -> Any:
    """Return a SQLAlchemy engine (snowflake-sqlalchemy) whose connections follow *config*.

    The engine's pool opens each connection with :func:`connect`, with the parameters
    SQLAlchemy takes from *url* and ``connect_args``, on both driver lines.

    >>> engine = create_engine("snowflake://me:pw@xy12345.eu-central-1/db")  # doctest: +SKIP

    Args:
        url: a ``snowflake://`` URL (a string or ``sqlalchemy.engine.URL``).
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        **kwargs: ``sqlalchemy.create_engine`` arguments; ``connect_args`` may also hold
            ``platform_detection``. ``creator`` is refused: it would open the connections.

    Raises:
        ConfigError: ``creator`` is given, or ``connect_args`` holds a proxy or
            certificate-verification parameter (raised at the first connection).
        MissingExtraError: SQLAlchemy or snowflake-sqlalchemy is missing.
    """
    sqlalchemy = import_extra("sqlalchemy", "snowflake-sqlalchemy")
    import_extra("snowflake.sqlalchemy", "snowflake-sqlalchemy")
    if "creator" in kwargs:
        raise refusal(
            "snowflake.create_engine(creator=...)",
            "a creator opens the engine's connections itself, behind carto_proxy's routing",
            "remove it: the engine opens each connection with carto_proxy.adapters."
            "snowflake.connect()",
        )
    config = resolve_config(config)
    engine = sqlalchemy.create_engine(url, **kwargs)

    def routed_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # SQLAlchemy's documented hook to open a DB-API connection in place of the dialect.
        return connect(config, **cparams)

    sqlalchemy.event.listen(engine, "do_connect", routed_connect)
    return engine
