"""requests sessions whose every request is routed by carto_proxy.

:func:`session` returns a ``requests.Session`` with a :class:`RoutingAdapter` mounted for
``http://`` and ``https://``; :func:`mount` puts one on a session you already have (a
``google.auth.transport.requests.AuthorizedSession``, for instance). The adapter ignores the
proxies requests hands it — from ``Session.proxies``, the environment or ``proxies=`` — and
sends each request, and each redirect hop, where :meth:`ProxyConfig.route
<carto_proxy.ProxyConfig.route>` says.

requests' own handling is not used because it disagrees with CARTO's rules: ``Session.proxies``
beats NO_PROXY (psf/requests#5000, #4871, #6524), and its NO_PROXY matcher has no ``*.example``
wildcards, no IPv6 CIDR and never matches ``example.com:443`` against a default port. The
session's ``trust_env`` is turned off, so ``REQUESTS_CA_BUNDLE`` and ``.netrc`` are not read
either.

TLS: origins are verified with :meth:`ProxyConfig.ssl_context` (certifi plus
``NODE_EXTRA_CA_CERTS``), given to the pools as their ``ssl_context``; the hop to an
``https://`` proxy uses :meth:`ProxyConfig.proxy_ssl_context`, passed to urllib3 as
``proxy_ssl_context`` through ``HTTPAdapter.proxy_manager_for`` (requests has no public knob for
it). ``NODE_TLS_REJECT_UNAUTHORIZED=0`` therefore skips the proxy's certificate only.

>>> from carto_proxy import ProxyConfig
>>> from carto_proxy.adapters.requests import session
>>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
>>> http = session(config)
>>> http.trust_env
False
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, ClassVar, cast

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Route
from carto_proxy._warehouses import Warehouse
from carto_proxy.adapters._common import (
    TRUST_FIX,
    import_extra,
    mark_hop,
    name_route,
    refusal,
    report_route,
    resolve_config,
)

if TYPE_CHECKING:
    import requests
    import requests.adapters
else:
    requests = import_extra("requests", "requests")
    import_extra("requests.adapters", "requests")

# After requests: a missing requests is reported as the requests extra, not the urllib3 one.
from carto_proxy.adapters._handshake import check_handshake_timeout
from carto_proxy.adapters._urllib3_handshake import bounded_pool_classes
from carto_proxy.adapters.urllib3 import check_tls_proxy_support, request_origin

__all__ = ["RoutingAdapter", "mount", "route_for", "session"]

_SCHEMES = ("http://", "https://")


class RoutingAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` that routes every request with :meth:`ProxyConfig.route`.

    The adapter's pools (direct, and one ``ProxyManager`` per proxy URL) are requests' own,
    configured with the configuration's TLS contexts.

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        proxy_handshake_timeout: the seconds the whole proxy handshake may take (TCP
            connect, TLS with an ``https://`` proxy, CONNECT sent → tunnel ready), however
            slowly the proxy answers; ``None`` (the default): the connect timeout.
        **kwargs: ``HTTPAdapter`` arguments (``pool_connections``, ``pool_maxsize``,
            ``max_retries``, ``pool_block``).
    """

    # Pickled attributes; requests declares this list as a plain class attribute.
    __attrs__ = [  # noqa: RUF012
        *requests.adapters.HTTPAdapter.__attrs__,
        "carto_proxy_config",
        "carto_proxy_handshake_timeout",
    ]
    # What a subclass routing one warehouse's traffic sets: the adapter name its route events
    # carry, and the warehouse every request is routed as (None: as its URL says).
    _reported_as: ClassVar[str] = "requests"
    _warehouse: ClassVar[Warehouse | None] = None

    def __init__(
        self,
        config: ProxyConfig | None = None,
        *,
        proxy_handshake_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.carto_proxy_config = resolve_config(config)
        self.carto_proxy_handshake_timeout = check_handshake_timeout(
            proxy_handshake_timeout, adapter="carto_proxy.adapters.requests.RoutingAdapter"
        )
        check_tls_proxy_support(self.carto_proxy_config)
        super().__init__(**kwargs)

    # The contexts are built on first use rather than in __init__: requests rebuilds the pools
    # of an unpickled adapter without calling __init__, and SSL contexts do not pickle.
    @property
    def _origin_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext | None = self.__dict__.get("_origin_ssl_context")
        if context is None:
            context = self.__dict__["_origin_ssl_context"] = self.carto_proxy_config.ssl_context()
        return context

    @property
    def _proxy_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext | None = self.__dict__.get("_proxy_ssl_context")
        if context is None:
            context = self.__dict__["_proxy_ssl_context"] = (
                self.carto_proxy_config.proxy_ssl_context()
            )
        return context

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Build the direct pools with the origin context (a documented requests hook)."""
        pool_kwargs["ssl_context"] = self._origin_context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Build a proxy's pools: the origin context, and the proxy-hop context for https."""
        proxy_kwargs["ssl_context"] = self._origin_context
        if proxy.lower().startswith("https://"):
            proxy_kwargs["proxy_ssl_context"] = self._proxy_context
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # Before its first pool: the proxy handshake of each connection is bounded.
        manager.pool_classes_by_scheme = bounded_pool_classes(self.carto_proxy_handshake_timeout)
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Keep origin trust in the pools' context.

        requests would set the pool's ``ca_certs`` to certifi's file, which urllib3 loads into
        the context again on every new connection; the context already holds certifi's roots
        and ``NODE_EXTRA_CA_CERTS``.
        """
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call,unused-ignore]
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def route(self, request: requests.PreparedRequest) -> Route:
        """Return the route *request* would take; nothing is sent, no observer is told."""
        return self.carto_proxy_config.route(
            request_origin(request.url or ""), warehouse=self._warehouse
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Send *request* where its route says; the *proxies* requests passes are ignored.

        Raises:
            ConfigError: ``verify`` is ``False`` or a CA path: origin trust comes from the
                configuration.
        """
        if verify is not True and verify is not None:
            shown = "False" if verify is False else "<CA bundle path>"
            raise refusal(
                f"carto_proxy.adapters.requests.RoutingAdapter.send(verify={shown})",
                "this would replace the origin verification carto_proxy configures",
                TRUST_FIX,
            )
        route = report_route(
            self.carto_proxy_config,
            request_origin(request.url or ""),
            adapter=self._reported_as,
            method=request.method,
            url=request.url,
            hop=lambda: mark_hop(cast("dict[str, Any]", request.hooks), request),
            warehouse=self._warehouse,
        )
        # A Proxy-Authorization header can only come from credentials in the ignored
        # Session.proxies (requests adds it on redirects); never send it anywhere
        # (CVE-2023-32681). CARTO's proxies take no credentials.
        request.headers.pop("Proxy-Authorization", None)
        routed = {} if route.proxy is None else {"all": str(route.proxy)}
        try:
            return super().send(
                request, stream=stream, timeout=timeout, verify=True, cert=cert, proxies=routed
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            name_route(error, route)
            raise


def route_for(session: requests.Session, url: str) -> Route:
    """Return the :class:`~carto_proxy.Route` *session* would give a request to *url*.

    Nothing is sent and no observer or log hears about it.

    >>> from carto_proxy import ProxyConfig
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy.internal:3128"})
    >>> route_for(session(config), "https://api.example.com/v1").action.value
    'proxy'

    Raises:
        TypeError: the adapter *session* uses for *url* is not a :class:`RoutingAdapter`
            (build the session with :func:`session`, or :func:`mount` one).
        TargetError: *url* cannot be routed.
    """
    get_adapter = getattr(session, "get_adapter", None)
    adapter = get_adapter(url) if callable(get_adapter) else None
    if not isinstance(adapter, RoutingAdapter):
        used = type(session if adapter is None else adapter).__name__
        raise TypeError(
            "route_for() needs a session whose adapter for this URL is carto_proxy's "
            f"(carto_proxy.adapters.requests.session() or mount()), not this {used}: it does "
            "not route by a ProxyConfig"
        )
    return adapter.carto_proxy_config.route(request_origin(url), warehouse=adapter._warehouse)


def mount(
    session: requests.Session, config: ProxyConfig | None = None, **adapter_options: Any
) -> RoutingAdapter:
    """Route every ``http://`` and ``https://`` request of *session* with *config*.

    Mounts a :class:`RoutingAdapter` on both prefixes and turns ``session.trust_env`` off, so
    requests reads no proxy, CA bundle or ``.netrc`` from the environment.

    Args:
        session: any ``requests.Session`` (or subclass, such as google-auth's
            ``AuthorizedSession``).
        config: the proxy configuration; ``None`` reads it from the environment.
        **adapter_options: :class:`RoutingAdapter` arguments (``pool_maxsize``,
            ``max_retries``...).

    Returns:
        The mounted adapter.

    Raises:
        ConfigError: the session has an adapter mounted on a longer ``http(s)://`` prefix,
            which requests would prefer to the routing adapter.
    """
    for prefix in session.adapters:
        if prefix.lower().startswith(_SCHEMES) and prefix.lower() not in _SCHEMES:
            raise refusal(
                f"requests.Session.adapters[{prefix!r}]",
                "requests prefers this adapter to the routing one for matching URLs, so "
                "carto_proxy would not route them",
                "mount carto_proxy's adapter on a session without prefix-specific adapters",
            )
    adapter = RoutingAdapter(config, **adapter_options)
    for prefix in _SCHEMES:
        session.mount(prefix, adapter)
    session.trust_env = False
    return adapter


def session(config: ProxyConfig | None = None, **adapter_options: Any) -> requests.Session:
    """Build a ``requests.Session`` that routes every request, redirects included, by *config*.

    Args:
        config: the proxy configuration; ``None`` reads it from the environment.
        **adapter_options: :class:`RoutingAdapter` arguments (``pool_maxsize``,
            ``max_retries``...).
    """
    http = requests.Session()
    mount(http, config, **adapter_options)
    return http
