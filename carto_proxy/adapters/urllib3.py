"""A urllib3 ``PoolManager`` whose every request is routed by carto_proxy.

:func:`pool_manager` returns a :class:`RoutingPoolManager`, a ``urllib3.PoolManager`` subclass
usable anywhere a ``PoolManager`` is accepted. Each request (and each redirect hop) is routed by
:meth:`ProxyConfig.route <carto_proxy.ProxyConfig.route>` to an inner ``PoolManager`` (direct) or
to the inner ``ProxyManager`` of the chosen proxy (one per proxy URL), so connections and CONNECT
tunnels are pooled as urllib3 pools them.

urllib3 reads no proxy variable itself and has no NO_PROXY matcher: there is nothing of its own
to turn off, and the routing is carto_proxy's.

TLS: urllib3 verifies the proxy hop and the origin with separate settings (urllib3 2.8,
``HTTPSConnection._connect_tls_proxy``): origins use the pool's ``ssl_context``, here
:meth:`ProxyConfig.ssl_context` (certifi plus ``NODE_EXTRA_CA_CERTS``); the hop to an
``https://`` proxy uses ``proxy_ssl_context``, here :meth:`ProxyConfig.proxy_ssl_context`, which
skips verification only when ``NODE_TLS_REJECT_UNAUTHORIZED=0``.

>>> from carto_proxy import ProxyConfig
>>> from carto_proxy.adapters.urllib3 import pool_manager
>>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
>>> http = pool_manager(config, timeout=10.0)
>>> http.connection_from_url("https://carto.com").proxy.url
'http://proxy.internal:3128'
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import ProxyURL
from carto_proxy._routing import Route
from carto_proxy.adapters._common import (
    ROUTING_FIX,
    InnerClients,
    import_extra,
    name_route,
    refusal,
    refuse_arguments,
    report_route,
    resolve_config,
)
from carto_proxy.adapters._handshake import check_handshake_timeout
from carto_proxy.adapters._urllib3_handshake import bounded_pool_classes
from carto_proxy.exceptions import ConfigError

if TYPE_CHECKING:
    import urllib3
    from urllib3.connectionpool import HTTPConnectionPool
    from urllib3.response import BaseHTTPResponse
    from urllib3.util import Url, parse_url
else:
    urllib3 = import_extra("urllib3", "urllib3")
    parse_url = import_extra("urllib3.util", "urllib3").parse_url

__all__ = [
    "RoutingPoolManager",
    "check_tls_proxy_support",
    "pool_manager",
    "route_for",
]

# urllib3 2.8 verifies the hop to an https:// proxy with proxy_ssl_context alone; before it, the
# origin's cert_reqs leaked into the proxy hop (urllib3/urllib3#3472, fixed by #5093), which
# breaks NODE_TLS_REJECT_UNAUTHORIZED=0 and http:// targets forwarded through the proxy.
_TLS_PROXY_MIN_VERSION = (2, 8)

# Pool arguments that would route or trust behind the configuration's back.
_ROUTING_ARGUMENTS = (
    "proxy_url",
    "proxy_headers",
    "proxy_ssl_context",
    "use_forwarding_for_https",
    "proxy_assert_hostname",
    "proxy_assert_fingerprint",
    "_proxy",
    "_proxy_headers",
    "_proxy_config",
)
# What a ProxyManager adds to each pool's context (urllib3 2.x ProxyManager.__init__).
_PROXY_KEYS = ("_proxy", "_proxy_headers", "_proxy_config")
_TRUST_ARGUMENTS = ("ca_certs", "ca_cert_dir", "ca_cert_data")
_TRUST_FIX = (
    "remove it: origins are verified with certifi plus NODE_EXTRA_CA_CERTS; put extra CAs "
    "in NODE_EXTRA_CA_CERTS, or pass ssl_context=config.ssl_context() after adjusting it "
    "(e.g. load_cert_chain() for a client certificate)"
)


class _Rerouting:
    """Mixin for the inner managers: hand every redirect hop back to the router.

    ``PoolManager.urlopen`` follows a redirect by calling ``self.urlopen`` on the new
    location; sending that call back to the router routes each hop afresh (a redirect from a
    proxied host to a NO_PROXY host goes direct, and the other way round).
    """

    _router: RoutingPoolManager

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> BaseHTTPResponse:
        return self._router.urlopen(method, url, redirect, **kw)

    def send(self, method: str, url: str, redirect: bool, **kw: Any) -> BaseHTTPResponse:
        """The manager's own ``urlopen``."""
        return super().urlopen(method, url, redirect, **kw)  # type: ignore[misc,no-any-return]


class _DirectManager(_Rerouting, urllib3.PoolManager):  # type: ignore[misc]
    def __init__(self, router: RoutingPoolManager, **kw: Any) -> None:
        self._router = router
        super().__init__(**kw)


class _ProxyManager(_Rerouting, urllib3.ProxyManager):  # type: ignore[misc]
    proxy: Url  # always set: it is built with a proxy URL

    def __init__(self, router: RoutingPoolManager, proxy_url: str, **kw: Any) -> None:
        self._router = router
        super().__init__(proxy_url, **kw)


class RoutingPoolManager(urllib3.PoolManager):
    """A ``PoolManager`` that routes each request with :meth:`ProxyConfig.route`.

    Build it with :func:`pool_manager`. ``request()``, ``urlopen()``,
    ``connection_from_url()``, ``connection_from_host()``, ``connection_from_context()`` and
    ``connection_from_pool_key()`` are routed; pools live in the inner
    managers, one ``PoolManager`` for direct routes and one ``ProxyManager`` per proxy URL.
    """

    def __init__(
        self,
        config: ProxyConfig,
        num_pools: int = 10,
        headers: Mapping[str, str] | None = None,
        *,
        proxy_handshake_timeout: float | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        adapter = "carto_proxy.adapters.urllib3.pool_manager"
        self._handshake = check_handshake_timeout(proxy_handshake_timeout, adapter=adapter)
        refuse_arguments(connection_pool_kw, _ROUTING_ARGUMENTS, adapter=adapter, fix=ROUTING_FIX)
        refuse_arguments(connection_pool_kw, _TRUST_ARGUMENTS, adapter=adapter, fix=_TRUST_FIX)
        _refuse_unverified(connection_pool_kw, adapter)
        check_tls_proxy_support(config)
        self.carto_proxy_config = config
        if connection_pool_kw.get("ssl_context") is None:
            connection_pool_kw["ssl_context"] = config.ssl_context()
        # The router's own pools stay empty; its settings are the inner managers' settings.
        super().__init__(num_pools, headers, **connection_pool_kw)
        self._options: dict[str, Any] = {
            "num_pools": num_pools,
            "headers": headers,
            **connection_pool_kw,
        }
        self._inner: InnerClients[_DirectManager | _ProxyManager] = InnerClients(
            config, self._inner_manager
        )

    def _inner_manager(self, proxy: ProxyURL | None) -> _DirectManager | _ProxyManager:
        if proxy is None:
            return _DirectManager(self, **self._options)
        context = self.carto_proxy_config.proxy_ssl_context() if proxy.is_tls else None
        manager = _ProxyManager(self, str(proxy), proxy_ssl_context=context, **self._options)
        manager.pool_classes_by_scheme = bounded_pool_classes(self._handshake)
        return manager

    def route(self, url: str) -> Route:
        """Return the route *url* would take; nothing is sent, no observer is told."""
        return self.carto_proxy_config.route(request_origin(url))

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> BaseHTTPResponse:
        """Route *url* and send the request through the selected inner manager.

        Same as ``PoolManager.urlopen``; every redirect hop is routed again. urllib3's errors
        say which route was taken.
        """
        route = report_route(
            self.carto_proxy_config,
            request_origin(url),
            adapter="urllib3",
            method=method,
            url=url,
            hop=lambda: _hop(kw),
        )
        try:
            return self._inner.pick(route).send(method, url, redirect, **kw)
        except urllib3.exceptions.HTTPError as error:
            name_route(error, route)
            raise

    def connection_from_context(self, request_context: dict[str, Any]) -> HTTPConnectionPool:
        """Return the pool the route of the context's ``scheme://host:port`` selects.

        ``connection_from_host()`` and ``connection_from_url()`` come here too. For a proxied
        ``http://`` target that is the pool to the proxy itself (forwarding), as with
        ``ProxyManager``: send absolute URLs through it.
        """
        manager, context = self._route_context(request_context)
        return manager.connection_from_context(context)

    def connection_from_pool_key(
        self, pool_key: Any, request_context: dict[str, Any]
    ) -> HTTPConnectionPool:
        """Return the pool the route of *request_context* selects.

        *pool_key* is not used: the inner manager keys its pools itself, by a key that names
        its proxy.
        """
        manager, context = self._route_context(request_context)
        return manager.connection_from_context(context)

    def _route_context(
        self, request_context: Mapping[str, Any]
    ) -> tuple[_DirectManager | _ProxyManager, dict[str, Any]]:
        """The inner manager the context's target is routed to, and the context as that manager
        builds it (with its proxy, and for a forwarded ``http://`` target the proxy's address)."""
        context = dict(request_context)
        scheme = str(context.get("scheme") or "http").lower()
        host, port = context.get("host"), context.get("port")
        netloc = f"[{host}]" if host and ":" in host and not host.startswith("[") else host
        target = f"{scheme}://{netloc if port is None else f'{netloc}:{port}'}"
        route = report_route(self.carto_proxy_config, request_origin(target), adapter="urllib3")
        manager = self._inner.pick(route)
        if isinstance(manager, _ProxyManager):
            context.update({key: manager.connection_pool_kw[key] for key in _PROXY_KEYS})
            if scheme != "https":  # forwarded, as ProxyManager.connection_from_host does
                proxy = manager.proxy
                context.update(scheme=proxy.scheme, host=proxy.host, port=proxy.port)
        return manager, context

    def clear(self) -> None:
        """Close every pool of every inner manager."""
        for manager in self._inner.all():
            manager.clear()
        super().clear()


def _hop(kw: Mapping[str, Any]) -> int:
    """The redirect hop a ``urlopen`` call is: urllib3 follows a redirect by calling
    ``urlopen`` again with a ``Retry`` whose history holds one entry per redirect so far."""
    history = getattr(kw.get("retries"), "history", ())
    return sum(1 for entry in history if entry.redirect_location)


def route_for(pool_manager: urllib3.PoolManager, url: str) -> Route:
    """Return the :class:`~carto_proxy.Route` *pool_manager* would give a request to *url*.

    Nothing is sent and no observer or log hears about it.

    >>> from carto_proxy import ProxyConfig
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
    >>> route_for(pool_manager(config), "https://api.example.com/v1").action.value
    'proxy'

    Raises:
        TypeError: *pool_manager* was not built by :func:`pool_manager`.
        TargetError: *url* cannot be routed.
    """
    if not isinstance(pool_manager, RoutingPoolManager):
        raise TypeError(
            "route_for() needs a pool manager built by carto_proxy.adapters.urllib3."
            f"pool_manager(), not this {type(pool_manager).__name__}: it does not route by a "
            "ProxyConfig"
        )
    return pool_manager.route(url)


def pool_manager(config: ProxyConfig | None = None, **kwargs: Any) -> RoutingPoolManager:
    """Build a :class:`RoutingPoolManager`.

    Keyword arguments are those of ``urllib3.PoolManager``: ``num_pools``, ``headers`` and
    the connection-pool arguments (``timeout``, ``retries``, ``maxsize``, ``block``...). A
    verifying ``ssl_context=`` replaces :meth:`ProxyConfig.ssl_context` for origins.

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        **kwargs: ``urllib3.PoolManager`` arguments, and ``proxy_handshake_timeout``: the
            seconds the whole proxy handshake may take (TCP connect, TLS with an ``https://``
            proxy, CONNECT sent → tunnel ready), however slowly the proxy answers; ``None``
            (the default): the connect timeout.

    Raises:
        ConfigError: an argument would bypass the routing or the TLS settings: any proxy
            argument, ``ca_certs``/``ca_cert_dir``/``ca_cert_data``, ``cert_reqs`` other than
            required, ``assert_hostname=False``, or a non-verifying ``ssl_context``; or an
            ``https://`` proxy is configured and urllib3 is older than 2.8.
    """
    return RoutingPoolManager(resolve_config(config), **kwargs)


# The start of urllib3's own URL grammar (urllib3.util.url._URI_RE with _SCHEME_RE's stricter
# scheme): a scheme, then "//" and the authority, which ends at the first \\ / ? or #.
_SCHEME_AUTHORITY = re.compile(r"[a-zA-Z][a-zA-Z0-9+-]*://[^\\/?#]*")


def request_origin(url: str) -> str:
    """``scheme://host[:port]`` of *url* as urllib3 parses it: what its route depends on.

    urllib3's own parser is used, so that the host routed is the host urllib3 connects to.
    Parsing costs ~10 µs, so the result is cached by the URL's scheme and authority (never by
    its path or query, and never when it holds user information).
    """
    head = _SCHEME_AUTHORITY.match(url)
    if head is None or "@" in head.group():
        return _parse_origin(url)
    return _cached_origin(head.group())


def _parse_origin(url: str) -> str:
    parsed = parse_url(url)
    # urllib3 treats a URL without a scheme as http (with a FutureWarning): route it so.
    return f"{(parsed.scheme or 'http').lower()}://{parsed.netloc}"


_cached_origin = functools.lru_cache(maxsize=1024)(_parse_origin)


def check_tls_proxy_support(config: ProxyConfig) -> None:
    """Refuse an ``https://`` proxy when the installed urllib3 cannot keep its hop apart.

    Raises:
        ConfigError: an ``https://`` proxy is configured and urllib3 is older than 2.8.
    """
    version = str(getattr(urllib3, "__version__", ""))
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0]
    if not (major.isdigit() and minor.isdigit()):
        return  # an unknown version: let it try
    if (int(major), int(minor)) >= _TLS_PROXY_MIN_VERSION:
        return
    for variable, proxy in (("HTTPS_PROXY", config.https_proxy), ("HTTP_PROXY", config.http_proxy)):
        if proxy is not None and proxy.is_tls:
            raise ConfigError(
                variable,
                str(proxy),
                f"urllib3 {version} verifies the hop to an https:// proxy with the "
                "origin's settings (urllib3/urllib3#3472, fixed in urllib3 2.8)",
                "pip install 'urllib3>=2.8'",
                code="CP401",
            )


def _refuse_unverified(kw: Mapping[str, Any], adapter: str) -> None:
    cert_reqs = kw.get("cert_reqs")
    context = kw.get("ssl_context")
    refused: tuple[str, str] | None = None
    if cert_reqs is not None and cert_reqs not in (ssl.CERT_REQUIRED, "CERT_REQUIRED", "REQUIRED"):
        refused = ("cert_reqs", "origin certificates are always verified")
    elif kw.get("assert_hostname") is False:
        refused = ("assert_hostname", "origin host names are always checked")
    elif context is not None and not (
        # urllib3 matches host names itself when check_hostname is off, so only the mode counts.
        isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    ):
        refused = ("ssl_context", "only a verifying ssl.SSLContext is accepted")
    if refused is not None:
        name, problem = refused
        raise refusal(
            f"{adapter}({name}=...)",
            f"{problem} (NODE_TLS_REJECT_UNAUTHORIZED=0 only concerns the proxy's certificate)",
            _TRUST_FIX,
        )
