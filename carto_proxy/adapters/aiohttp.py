"""aiohttp sessions whose every request is routed by carto_proxy.

:func:`session` builds an ``aiohttp.ClientSession`` whose requests, and each redirect hop, go
where :meth:`ProxyConfig.route <carto_proxy.ProxyConfig.route>` says: proxied requests get the
route's proxy, direct ones none. aiohttp builds a new request object for each hop of a redirect
chain from the session's ``request_class``; carto_proxy's request class decides the hop's proxy
as it is built. ``trust_env`` is off, so aiohttp reads no proxy variable, ``.netrc`` or
``SSL_CERT_FILE`` of its own (its NO_PROXY dialect is urllib's).

TLS: origins are verified with :meth:`ProxyConfig.ssl_context` (certifi plus
``NODE_EXTRA_CA_CERTS``). aiohttp has a single ``ssl`` setting per request: it builds the
request to an ``https://`` proxy with the origin request's ``ssl`` (aiohttp 3.9–3.14,
``TCPConnector._create_proxy_connection`` / ``_update_proxy_auth_header_and_build_proxy_req``:
``ClientRequest(..., ssl=req.ssl)``), so both TLS handshakes get the same context. When the
proxy's certificate must not be verified (``NODE_TLS_REJECT_UNAUTHORIZED=0``) the request's
context is the origin context with one exception: the handshake whose server name is the
proxy's host is made with :meth:`ProxyConfig.proxy_ssl_context`. A request whose origin (or
``server_hostname=``) *is* the proxy's host gets the plain origin context for both hops, so
verification is never widened to an origin.

>>> import asyncio
>>> from carto_proxy import ProxyConfig
>>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
>>> async def main() -> bool:
...     async with session(config) as http:
...         return http.trust_env
>>> asyncio.run(main())
False
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import ProxyURL
from carto_proxy._routing import Route
from carto_proxy.adapters._aiohttp_errors import NAMED_ERRORS, name_aiohttp_route
from carto_proxy.adapters._aiohttp_tls import (
    ProxyHopContext,
    check_tls_in_tls,
    host_name,
    proxy_hop_context,
)
from carto_proxy.adapters._common import (
    ROUTING_FIX,
    TRUST_FIX,
    InnerClients,
    built_here,
    explain,
    import_extra,
    mark_hop,
    publish_route,
    refusal,
    refuse_arguments,
    refuse_trust_env,
    resolve_config,
)
from carto_proxy.adapters._handshake import check_handshake_timeout, describe_timeout

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL
else:
    aiohttp = import_extra("aiohttp", "aiohttp")
    URL = import_extra("yarl", "aiohttp").URL

__all__ = ["connector", "route_for", "session"]

_CONNECTOR_FIX = (
    "build it with carto_proxy.adapters.aiohttp.connector(...), which takes the "
    "aiohttp.TCPConnector arguments (limit=, ttl_dns_cache=, keepalive_timeout=...) except ssl"
)


def _origin(url: URL) -> str:
    """``scheme://host[:port]`` of *url*: what routing depends on (never its path, nor its user
    information, which must not become a cache key)."""
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{url.scheme}://{host}" if url.port is None else f"{url.scheme}://{host}:{url.port}"


class _SessionRouting:
    """A session's configuration, the proxy and ``ssl`` each route gets, and its hop marks."""

    def __init__(self, config: ProxyConfig, base_url: object) -> None:
        self.config = config
        self.base_url = None if base_url is None else URL(str(base_url))
        self.origin_context = config.ssl_context()
        self._routes = InnerClients(config, self._proxy_settings)
        self._marks = _HopMarks()
        self._by_origin: dict[str, tuple[Route, URL | None, ssl.SSLContext]] = {}

    def _proxy_settings(self, proxy: ProxyURL | None) -> tuple[URL | None, ssl.SSLContext]:
        if proxy is None:
            return None, self.origin_context
        if proxy.is_tls and not self.config.verify_proxy:
            return URL(str(proxy)), proxy_hop_context(self.config, proxy)
        return URL(str(proxy)), self.origin_context

    def route(self, url: URL) -> Route:
        """The route of *url* (joined to the base URL); nothing is told to anyone."""
        if self.base_url is not None and not url.absolute:
            url = self.base_url.join(url)
        return self.config.route(_origin(url))

    def hop_settings(
        self, request: object, method: str, url: URL, headers: Any, server_hostname: str | None
    ) -> tuple[Route, URL | None, ssl.SSLContext]:
        """Route one hop about to be built, publish it; return its route, proxy and context."""
        key = _origin(url)
        settings = self._by_origin.get(key)
        if settings is None:
            settings = self._origin_settings(key)
        route, proxy, context = settings
        marks = self._marks
        publish_route(
            route,
            adapter="aiohttp",
            method=method,
            url=url,
            hop=lambda: 0 if headers is None else mark_hop(marks.of(headers), request),
        )
        if isinstance(context, ProxyHopContext) and (
            host_name(server_hostname or route.target.host) == context.carto_proxy_hop[0]
        ):
            context = self.origin_context  # the origin is the proxy's host: verify both
        return route, proxy, context

    def _origin_settings(self, key: str) -> tuple[Route, URL | None, ssl.SSLContext]:
        """The route of *key* (an origin), with its proxy and context, remembered for the next
        request.

        Each request is built with a new URL object; keyed by its origin, the next request to
        the same place costs one dictionary lookup.
        """
        route = self.config.route(key)
        settings = (route, *self._routes.pick(route))
        if len(self._by_origin) >= _ORIGINS_REMEMBERED:
            self._by_origin.clear()
        self._by_origin[key] = settings
        return settings


class _HopMarks:
    """The hop marks of each request in flight, kept by the headers object of its hops.

    aiohttp hands the same headers object (a new one per session call, unhashable) to the
    request of every hop of that call; the marks go when it does.
    """

    def __init__(self) -> None:
        self._marks: dict[int, tuple[weakref.ref[Any], dict[str, Any]]] = {}

    def of(self, headers: Any) -> dict[str, Any]:
        """The marks of the call whose hops share *headers*."""
        key = id(headers)
        entry = self._marks.get(key)
        if entry is None or entry[0]() is not headers:
            entry = (weakref.ref(headers, lambda _: self._marks.pop(key, None)), {})
            self._marks[key] = entry
        return entry[1]


_ORIGINS_REMEMBERED = 1024  # origins whose decision a session remembers; beyond it, it starts over


# The routing of each session built here.
_session_routing: weakref.WeakKeyDictionary[aiohttp.ClientSession, _SessionRouting] = (
    weakref.WeakKeyDictionary()
)


class _RoutedRequest(aiohttp.ClientRequest):
    """aiohttp's request, built once per hop, with the proxy and ``ssl`` of the hop's route.

    Each session gets a subclass holding its routing (see :func:`_request_class`).
    """

    carto_proxy_routing: ClassVar[_SessionRouting]

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        get = kwargs.get
        if (
            get("proxy") is not None
            or get("proxy_auth") is not None
            or get("ssl", True) is not True
        ):
            _refuse_request_arguments(kwargs)
        self.carto_proxy_route, kwargs["proxy"], kwargs["ssl"] = (
            self.carto_proxy_routing.hop_settings(
                self, method, url, get("headers"), get("server_hostname")
            )
        )
        super().__init__(method, url, **kwargs)


def _request_class(routing: _SessionRouting) -> type[aiohttp.ClientRequest]:
    """The request class of a session routed by *routing*."""
    return type("RoutedRequest", (_RoutedRequest,), {"carto_proxy_routing": routing})


def _refuse_request_arguments(kwargs: dict[str, Any]) -> None:
    adapter = "carto_proxy.adapters.aiohttp session request"
    if kwargs.get("proxy") is not None:
        raise refusal(f"{adapter}(proxy=...)", "it would bypass carto_proxy's routing", ROUTING_FIX)
    if kwargs.get("proxy_auth") is not None:
        raise refusal(
            f"{adapter}(proxy_auth=...)",
            "CARTO's proxies take no credentials",
            "remove it: proxy authentication is not supported",
        )
    if kwargs.get("ssl", True) is not True:
        raise refusal(
            f"{adapter}(ssl=/verify_ssl=/ssl_context=/fingerprint=...)",
            "aiohttp would use it for the proxy hop and the origin alike, replacing the "
            "verification carto_proxy configures",
            TRUST_FIX,
        )


class _Connector(aiohttp.TCPConnector):
    """aiohttp's TCP connector, with the proxy handshake bounded (see :func:`connector`)."""

    def __init__(self, proxy_handshake_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.carto_proxy_handshake_timeout = proxy_handshake_timeout

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        """aiohttp's ``connect``, whose errors name the request's route (see
        :mod:`._aiohttp_errors`)."""
        try:
            return await super().connect(req, traces, timeout)
        except (*NAMED_ERRORS, asyncio.TimeoutError) as error:
            route = getattr(req, "carto_proxy_route", None)
            if route is None:
                raise
            if isinstance(error, NAMED_ERRORS):
                name_aiohttp_route(error, route)
                raise
            # The session replaces a timeout with aiohttp.ConnectionTimeoutError("Connection
            # timeout to host ..."), caused by this one.
            raise asyncio.TimeoutError(explain(str(error) or "timed out", route)) from error

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Any:
        # The one method aiohttp calls for each new connection (aiohttp 3.0–3.14); the proxy
        # handshake happens inside it. aiohttp reads the CONNECT answer without any timeout
        # of its own but the request's total.
        bound = self.carto_proxy_handshake_timeout or _connect_timeout(timeout)
        if req.proxy is None or bound is None:
            return await super()._create_connection(req, traces, timeout)
        try:
            return await asyncio.wait_for(super()._create_connection(req, traces, timeout), bound)
        except asyncio.TimeoutError as error:
            # The session turns it into aiohttp.ConnectionTimeoutError, caused by this one.
            raise asyncio.TimeoutError(describe_timeout(req.proxy, bound)) from error


def _connect_timeout(timeout: aiohttp.ClientTimeout) -> float | None:
    """The client's connect timeout: the smaller of ``connect`` and ``sock_connect``."""
    limits = [value for value in (timeout.connect, timeout.sock_connect) if value]
    return min(limits) if limits else None


def connector(
    *, proxy_handshake_timeout: float | None = None, **kwargs: Any
) -> aiohttp.TCPConnector:
    """Build the ``aiohttp.TCPConnector`` for :func:`session` (``session(connector=...)``).

    Args:
        proxy_handshake_timeout: seconds the whole proxy handshake of a new connection may
            take (TCP connect to the proxy, TLS with an ``https://`` proxy, CONNECT sent →
            tunnel ready, TLS with the origin inside it); ``None``: the request's connect
            timeout (the smaller of ``ClientTimeout.connect`` and ``sock_connect``; aiohttp's
            default ``sock_connect`` is 30 s).
        **kwargs: ``aiohttp.TCPConnector`` arguments (``limit``, ``limit_per_host``,
            ``ttl_dns_cache``, ``keepalive_timeout``, ``force_close``...).

    Raises:
        ConfigError: ``ssl=``, ``verify_ssl=``, ``ssl_context=`` or ``fingerprint=`` is given:
            a connector with its own TLS settings (CP400).
        ValueError: *proxy_handshake_timeout* is not a positive number of seconds.
    """
    refuse_arguments(
        kwargs,
        ("ssl", "verify_ssl", "ssl_context", "fingerprint"),
        adapter="carto_proxy.adapters.aiohttp.connector",
        fix=TRUST_FIX,
    )
    bound = check_handshake_timeout(
        proxy_handshake_timeout, adapter="carto_proxy.adapters.aiohttp.connector"
    )
    return _Connector(bound, **kwargs)


def session(
    config: ProxyConfig | None = None,
    *,
    proxy_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """Build an ``aiohttp.ClientSession`` that routes every request, redirects included.

    Call it where an event loop runs (aiohttp's sessions belong to one loop).

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        proxy_handshake_timeout: as :func:`connector`, for the connector built here.
        **kwargs: ``aiohttp.ClientSession`` arguments (``timeout``, ``headers``, ``base_url``,
            ``cookie_jar``, ``raise_for_status``, ``trace_configs``, ``connector`` from
            :func:`connector`...).

    Raises:
        ConfigError: an argument would bypass the routing or the TLS settings (CP400):
            ``proxy=``, ``proxy_auth=``, ``trust_env=True``, ``request_class=``, or a
            ``connector=`` not built by :func:`connector`; or an ``https://`` proxy for
            https targets on a Python where aiohttp cannot speak TLS through TLS (CP403).
            Per request, ``proxy=``, ``proxy_auth=`` and any ``ssl=`` / ``verify_ssl=`` /
            ``ssl_context=`` / ``fingerprint=`` are refused the same way.
    """
    config = resolve_config(config)
    adapter = "carto_proxy.adapters.aiohttp.session"
    refuse_arguments(
        kwargs, ("proxy", "proxy_auth", "request_class"), adapter=adapter, fix=ROUTING_FIX
    )
    refuse_trust_env(
        kwargs,
        adapter=adapter,
        reads="aiohttp would read HTTP(S)_PROXY, NO_PROXY (urllib's dialect) and .netrc",
    )
    check_tls_in_tls(config)
    built_connector = kwargs.pop("connector", None)
    if built_connector is None:
        built_connector = connector(proxy_handshake_timeout=proxy_handshake_timeout)
    elif not isinstance(built_connector, _Connector):
        raise refusal(
            f"{adapter}(connector=...)",
            "a connector built elsewhere may carry its own ssl settings and does not bound "
            "the proxy handshake",
            _CONNECTOR_FIX,
        )
    elif proxy_handshake_timeout is not None:
        raise refusal(
            f"{adapter}(proxy_handshake_timeout=..., connector=...)",
            "the connector given has its own proxy_handshake_timeout",
            "pass proxy_handshake_timeout to connector() instead",
        )
    routing = _SessionRouting(config, kwargs.get("base_url"))
    built = aiohttp.ClientSession(
        connector=built_connector,
        request_class=_request_class(routing),
        trust_env=False,
        **kwargs,
    )
    _session_routing[built] = routing
    return built


def route_for(session: aiohttp.ClientSession, url: str | URL) -> Route:
    """Return the :class:`~carto_proxy.Route` *session* would give a request to *url*.

    Nothing is sent and no observer or log hears about it. A relative *url* is joined to the
    session's ``base_url``, as a request would be.

    Raises:
        TypeError: *session* was not built by :func:`session`.
        TargetError: *url* cannot be routed.
    """
    routing = built_here(
        _session_routing, session, "a session built by carto_proxy.adapters.aiohttp.session()"
    )
    return routing.route(URL(url) if isinstance(url, str) else url)
