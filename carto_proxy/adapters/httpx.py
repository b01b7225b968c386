"""httpx clients whose every request is routed by carto_proxy.

:func:`client` and :func:`async_client` build an ``httpx.Client`` / ``httpx.AsyncClient`` on a
routing transport (:func:`transport`, :func:`async_transport`). For each request the transport
asks :meth:`ProxyConfig.route <carto_proxy.ProxyConfig.route>` and sends the request through a
pooled direct transport or through the pooled transport of the chosen proxy (one per proxy URL),
so connections and CONNECT tunnels are reused.

httpx's own proxy handling is never used: it does not read NO_PROXY the way CARTO does (no CIDR,
``.example.com`` skips the apex, ``*.example.com`` matches nothing, an IPv6 entry makes
``Client()`` raise) and ``proxy=`` ignores NO_PROXY altogether. ``trust_env`` is off, so
``HTTP(S)_PROXY``, ``SSL_CERT_FILE`` and ``.netrc`` are not read behind the configuration's back.

TLS: origins are verified with :meth:`ProxyConfig.ssl_context` (certifi plus
``NODE_EXTRA_CA_CERTS``); the hop to an ``https://`` proxy uses
:meth:`ProxyConfig.proxy_ssl_context`, which skips verification only when
``NODE_TLS_REJECT_UNAUTHORIZED=0``. httpx ignores ``verify=`` for the proxy hop, hence the
explicit ``httpx.Proxy(ssl_context=...)``.

>>> from carto_proxy import ProxyConfig
>>> from carto_proxy.adapters import httpx as carto_httpx
>>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
>>> with carto_httpx.client(config, timeout=10) as http:
...     http.trust_env
False
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import ProxyURL
from carto_proxy._routing import Route
from carto_proxy.adapters._common import (
    InnerClients,
    built_here,
    explain,
    import_extra,
    mark_hop,
    report_route,
    resolve_config,
)
from carto_proxy.adapters._handshake import check_handshake_timeout
from carto_proxy.adapters._httpx_handshake import AsyncHandshake, SyncHandshake, timed_out
from carto_proxy.adapters._httpx_options import (
    DEFAULT_LIMITS,
    inner_transports,
    origin_context,
    transport_options,
)
from carto_proxy.exceptions import TargetError

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_extra("httpx", "httpx")

__all__ = [
    "AsyncRoutingTransport",
    "RoutingTransport",
    "UnroutableURL",
    "async_client",
    "async_transport",
    "client",
    "route_for",
    "transport",
]

_T = TypeVar("_T")
_H = TypeVar("_H", SyncHandshake, AsyncHandshake)


class UnroutableURL(httpx.InvalidURL, TargetError):
    """A URL httpx accepts but carto_proxy cannot route, so no request is sent.

    httpx takes any RFC 3986 host (``https://a!b/``, ``https://-x/``, percent signs, empty
    labels) and any port number (``:0``, ``:70000``); no resolver or proxy could reach them.
    Both an ``httpx.InvalidURL`` (what httpx raises for a URL it cannot use) and a
    :class:`~carto_proxy.TargetError`, whose ``target`` and ``problem`` it carries.
    """

    def __init__(self, error: TargetError) -> None:
        self.target, self.problem = error.target, error.problem
        Exception.__init__(self, f"{error} (httpx accepts the URL; carto_proxy cannot route it)")


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of *url*: what routing depends on (the path never does).

    Routing on the origin rather than the full URL keeps :meth:`ProxyConfig.route`'s cache
    small and hot.
    """
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _explain(error: httpx.TransportError, route: Route) -> httpx.TransportError:
    """The same kind of error, saying which route carto_proxy took and why."""
    return type(error)(explain(str(error) or type(error).__name__, route))


class _HttpxRouting(Generic[_T]):
    """What the sync and async routing transports share: the decision and the inner transports.

    Only the I/O differs between the two, as in httpx itself.
    """

    def __init__(
        self,
        config: ProxyConfig,
        make: Callable[[ProxyURL | None], _T],
        proxy_handshake_timeout: float | None = None,
    ) -> None:
        self.carto_proxy_config = config
        self._inner = InnerClients(config, make)
        self._handshake = check_handshake_timeout(
            proxy_handshake_timeout, adapter="carto_proxy.adapters.httpx"
        )

    def route(self, request: httpx.Request) -> Route:
        """Return the route *request* would take; nothing is sent, no observer is told.

        Raises:
            UnroutableURL: the URL cannot be routed.
        """
        try:
            return self.carto_proxy_config.route(_origin(request.url))
        except TargetError as error:
            raise UnroutableURL(error) from None

    def _route_request(self, request: httpx.Request) -> Route:
        """Route *request*, about to be sent, and publish the decision."""
        try:
            return report_route(
                self.carto_proxy_config,
                _origin(request.url),
                adapter="httpx",
                method=request.method,
                url=request.url,
                hop=lambda: mark_hop(request.extensions, request),
            )
        except TargetError as error:
            raise UnroutableURL(error) from None

    def _follow(self, kind: type[_H], request: httpx.Request) -> _H:
        """Start following the proxy handshake of *request* (see :mod:`._httpx_handshake`)."""
        handshake = kind(
            self._handshake,
            tunnel=request.url.scheme == "https",
            request_extensions=request.extensions,
        )
        handshake.install()
        return handshake

    def _bounds_handshake(self, request: httpx.Request, route: Route) -> bool:
        """Whether *request* has a proxy handshake to bound: a CONNECT tunnel (an https
        target) or the TLS handshake with an ``https://`` proxy."""
        return route.proxy is not None and (route.proxy.is_tls or request.url.scheme == "https")


class RoutingTransport(_HttpxRouting[httpx.BaseTransport], httpx.BaseTransport):
    """A transport that routes every request with :meth:`ProxyConfig.route`.

    Build it with :func:`transport`. Direct requests share one pooled ``httpx.HTTPTransport``;
    proxied requests use one pooled ``httpx.HTTPTransport`` per proxy URL.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the transport its route selects."""
        route = self._route_request(request)
        inner = self._inner.pick(route)
        if not self._bounds_handshake(request, route):
            try:
                return inner.handle_request(request)
            except httpx.TransportError as error:
                raise _explain(error, route) from error
        handshake = self._follow(SyncHandshake, request)
        try:
            return inner.handle_request(request)
        except httpx.TransportError as error:
            if handshake.finish():
                raise timed_out(route, handshake.seconds) from error
            raise _explain(error, route) from error
        finally:
            handshake.finish()
            handshake.detach()

    def close(self) -> None:
        """Close every inner transport and its connections."""
        for inner in self._inner.all():
            inner.close()


class AsyncRoutingTransport(_HttpxRouting[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport):
    """The asyncio/trio counterpart of :class:`RoutingTransport`; see :func:`async_transport`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the transport its route selects."""
        route = self._route_request(request)
        inner = self._inner.pick(route)
        if not self._bounds_handshake(request, route):
            try:
                return await inner.handle_async_request(request)
            except httpx.TransportError as error:
                raise _explain(error, route) from error
        handshake = self._follow(AsyncHandshake, request)
        response = None
        try:
            with handshake.scope:
                response = await inner.handle_async_request(request)
        except httpx.TransportError as error:
            raise _explain(error, route) from error
        finally:
            handshake.detach()
        if response is None:  # the deadline cancelled it
            await handshake.abandon()
            raise timed_out(route, handshake.seconds)
        return response

    async def aclose(self) -> None:
        """Close every inner transport and its connections."""
        for inner in self._inner.all():
            await inner.aclose()


def transport(
    config: ProxyConfig | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
    http1: bool = True,
    http2: bool = False,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
    socket_options: Iterable[Any] | None = None,
    proxy_handshake_timeout: float | None = None,
) -> RoutingTransport:
    """Build a routing transport for ``httpx.Client(transport=...)``.

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        verify: ``True`` (origins verified with :meth:`ProxyConfig.ssl_context`) or a
            verifying ``ssl.SSLContext`` to use for origins instead, e.g. one from
            ``config.ssl_context()`` with a client certificate loaded.
        http1: as ``httpx.HTTPTransport``.
        http2: as ``httpx.HTTPTransport`` (needs the ``h2`` package).
        limits: connection limits of *each* inner transport.
        retries: connection retries, as ``httpx.HTTPTransport`` (httpx applies them to direct
            connections only).
        socket_options: as ``httpx.HTTPTransport``.
        proxy_handshake_timeout: the seconds the whole proxy handshake of a new connection
            may take (TCP connect, TLS with an ``https://`` proxy, CONNECT sent → tunnel
            ready), however slowly the proxy answers; ``None`` (the default): the request's
            connect timeout.

    Raises:
        ConfigError: *verify* would turn origin verification off.
    """
    config = resolve_config(config)
    make = inner_transports(
        httpx.HTTPTransport,
        config,
        origin_context(config, verify, "transport"),
        http1=http1,
        http2=http2,
        limits=limits,
        retries=retries,
        socket_options=socket_options,
    )
    return RoutingTransport(config, make, proxy_handshake_timeout)


def async_transport(
    config: ProxyConfig | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
    http1: bool = True,
    http2: bool = False,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
    socket_options: Iterable[Any] | None = None,
    proxy_handshake_timeout: float | None = None,
) -> AsyncRoutingTransport:
    """Build a routing transport for ``httpx.AsyncClient(transport=...)``.

    The arguments are those of :func:`transport`.
    """
    config = resolve_config(config)
    make = inner_transports(
        httpx.AsyncHTTPTransport,
        config,
        origin_context(config, verify, "async_transport"),
        http1=http1,
        http2=http2,
        limits=limits,
        retries=retries,
        socket_options=socket_options,
    )
    return AsyncRoutingTransport(config, make, proxy_handshake_timeout)


def client(
    config: ProxyConfig | None = None,
    *,
    proxy_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """Build an ``httpx.Client`` that routes every request, redirects included, by *config*.

    Keyword arguments go to ``httpx.Client`` (``timeout``, ``headers``, ``follow_redirects``,
    ``event_hooks``, ``base_url``...); ``http1``, ``http2``, ``limits`` and a verifying
    ``verify=<SSLContext>`` go to the routing transport (:func:`transport`).

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        proxy_handshake_timeout: as :func:`transport`.
        **kwargs: ``httpx.Client`` arguments.

    Raises:
        ConfigError: an argument would bypass the routing or the TLS settings: ``proxy=``,
            ``mounts=``, ``transport=``, ``trust_env=True``, ``cert=``, or a ``verify=``
            other than ``True`` or a verifying ``ssl.SSLContext``.
    """
    config = resolve_config(config)
    origin, options = transport_options(config, kwargs, "client")
    make = inner_transports(httpx.HTTPTransport, config, origin, **options)
    routing = RoutingTransport(config, make, proxy_handshake_timeout)
    built = httpx.Client(transport=routing, trust_env=False, **kwargs)
    _client_transports[built] = routing
    return built


def async_client(
    config: ProxyConfig | None = None,
    *,
    proxy_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """Build an ``httpx.AsyncClient``; the async counterpart of :func:`client`."""
    config = resolve_config(config)
    origin, options = transport_options(config, kwargs, "async_client")
    make = inner_transports(httpx.AsyncHTTPTransport, config, origin, **options)
    routing = AsyncRoutingTransport(config, make, proxy_handshake_timeout)
    built = httpx.AsyncClient(transport=routing, trust_env=False, **kwargs)
    _client_transports[built] = routing
    return built


# The routing transport of each client built here (httpx keeps its transport private).
_client_transports: weakref.WeakKeyDictionary[
    httpx.Client | httpx.AsyncClient, _HttpxRouting[Any]
] = weakref.WeakKeyDictionary()


def route_for(
    client: httpx.Client | httpx.AsyncClient | RoutingTransport | AsyncRoutingTransport,
    url: str | httpx.URL,
) -> Route:
    """Return the :class:`~carto_proxy.Route` *client* would give a request to *url*.

    Nothing is sent and no observer or log hears about it. A relative *url* is joined to the
    client's ``base_url``, as a request would be.

    >>> from carto_proxy import ProxyConfig
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
    >>> str(route_for(client(config), "https://api.example.com/v1"))
    'PROXY https://api.example.com:443 via http://proxy.internal:3128 (proxy)'

    Args:
        client: a client from :func:`client` or :func:`async_client`, or a transport from
            :func:`transport` or :func:`async_transport`.
        url: an absolute URL, or one relative to the client's ``base_url``.

    Raises:
        TypeError: *client* was not built by carto_proxy.
        UnroutableURL: *url* cannot be routed (a :class:`~carto_proxy.TargetError` and an
            ``httpx.InvalidURL``).
    """
    if isinstance(client, _HttpxRouting):
        return client.route(httpx.Request("GET", url))
    routing = built_here(
        _client_transports,
        client,
        "a client built by carto_proxy.adapters.httpx (client() or async_client()) or one "
        "of its transports",
    )
    return routing.route(client.build_request("GET", url))
