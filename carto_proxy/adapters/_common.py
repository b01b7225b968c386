"""What every adapter shares: routing and reporting a request, naming the route in its errors,
holding one inner client per route, importing its library, refusing arguments that would
defeat the routing."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import ModuleType
from typing import Any, Generic, TypeVar

from carto_proxy._config import ProxyConfig
from carto_proxy._observe import publish, watched
from carto_proxy._proxy_url import ProxyURL
from carto_proxy._routing import Route
from carto_proxy._target import Protocol
from carto_proxy._warehouses import Warehouse
from carto_proxy.exceptions import ConfigError, MissingExtraError

__all__ = [
    "ROUTING_FIX",
    "TRUST_FIX",
    "InnerClients",
    "built_here",
    "explain",
    "import_extra",
    "mark_hop",
    "name_route",
    "publish_route",
    "refusal",
    "refuse_arguments",
    "refuse_trust_env",
    "report_route",
    "resolve_config",
]

_C = TypeVar("_C")

ROUTING_FIX = (
    "remove it: carto_proxy routes every request from the ProxyConfig "
    "(HTTP_PROXY, HTTPS_PROXY, NO_PROXY); change the configuration instead"
)
"""How to fix an argument that would route requests on its own."""
TRUST_FIX = (
    "remove it: origins are verified with certifi plus NODE_EXTRA_CA_CERTS; put extra CAs in "
    "NODE_EXTRA_CA_CERTS (NODE_TLS_REJECT_UNAUTHORIZED=0 skips the proxy's certificate only)"
)
"""How to fix an argument that would replace the origin verification."""


def resolve_config(config: ProxyConfig | None) -> ProxyConfig:
    """``config``, or :meth:`ProxyConfig.from_env` when it is ``None``."""
    return ProxyConfig.from_env() if config is None else config


def report_route(
    config: ProxyConfig,
    target: str,
    *,
    adapter: str,
    method: str | None = None,
    url: object = None,
    hop: int | Callable[[], int] = 0,
    protocol: Protocol | None = None,
    warehouse: Warehouse | None = None,
) -> Route:
    """Route *target* for a request *adapter* is about to send, and publish the decision.

    Observers, the ``carto_proxy.route`` log and the current trace span hear about it (see
    :mod:`carto_proxy._observe`); with nobody listening, nothing more than the check is done.

    Args:
        config: the configuration.
        target: what routing depends on (usually ``scheme://host:port``).
        adapter: the adapter's name, e.g. ``"httpx"``.
        method: the HTTP method, if any.
        url: the full URL as the adapter has it (redacted before anyone sees it); *target*
            when ``None``.
        hop: the redirect hop, or a function computing it, called only when someone listens.
        protocol: overrides the protocol the target implies.
        warehouse: the warehouse the target belongs to.
    """
    route = config.route(target, protocol=protocol, warehouse=warehouse)
    publish_route(
        route, adapter=adapter, method=method, url=target if url is None else url, hop=hop
    )
    return route


def publish_route(
    route: Route,
    *,
    adapter: str,
    method: str | None,
    url: object,
    hop: int | Callable[[], int] = 0,
) -> None:
    """Publish *route*, which *adapter* decided already, as :func:`report_route` does."""
    if watched(route):
        publish(route, adapter, method, url, hop() if callable(hop) else hop)


# Where a request keeps its redirect hop (see mark_hop).
_HOP_MARK = "carto_proxy.hop"


def mark_hop(marks: MutableMapping[str, Any], request: object) -> int:
    """The redirect hop *request* is, from *marks*, a mapping each hop hands to the next.

    httpx copies a request's extensions into the next hop's request, and requests shares one
    hooks dict between the hops of a chain: the mark one hop leaves there is found, under
    another request, by the next. The same request sent again is hop 0 again.
    """
    mark = marks.get(_HOP_MARK)
    hop = 0 if mark is None or mark[1] == id(request) else mark[0] + 1
    marks[_HOP_MARK] = (hop, id(request))
    return hop


# Marks a message that already names its route: urllib3 re-raises a redirect hop's error
# through the request that led to it, and it must keep the hop's route.
_MARK = "[carto_proxy: "


def explain(text: str, route: Route) -> str:
    """*text* followed by the route carto_proxy took and why (once, however often called).

    e.g. ``"Connection refused [carto_proxy: https://api.example.com:443 through the proxy
    http://proxy:3128 (HTTPS_PROXY), rule proxy]"``.
    """
    if _MARK in text:
        return text
    via = f"through the proxy {route.proxy} ({route.variable})" if route.proxy else "directly"
    return f"{text} {_MARK}{route.target} {via}, rule {route.rule}]"


def name_route(error: BaseException, route: Route) -> None:
    """Make *error*'s message name *route*, keeping its type, attributes and cause.

    The library's own exception is kept, so existing ``except`` clauses and attribute
    lookups (``.reason``, ``.request``) still work; only its message grows. An error wrapping
    another as its first argument (requests' ``ConnectionError(MaxRetryError)``) keeps the
    wrapped one, whose message is extended instead.
    """
    first = error.args[0] if error.args else None
    if isinstance(first, BaseException):
        name_route(first, route)
        return
    text = str(first) if isinstance(first, str) else (str(error) or type(error).__name__)
    error.args = (explain(text, route), *error.args[1:])


class InnerClients(Generic[_C]):
    """The inner clients of a router: one for direct routes, one per proxy URL.

    Args:
        config: the configuration, whose proxies are all known up front.
        make: builds the client of a route's proxy (``None``: the direct client).
    """

    def __init__(self, config: ProxyConfig, make: Callable[[ProxyURL | None], _C]) -> None:
        self.direct = make(None)
        # Every proxy a route can name (GRPC_PROXY too: a grpc:// URL is routed as gRPC),
        # built now so that picking one is a lookup, with no lock on the request path.
        proxies = {config.http_proxy, config.https_proxy, config.grpc_proxy}
        self.proxied: dict[ProxyURL, _C] = {proxy: make(proxy) for proxy in proxies if proxy}

    def pick(self, route: Route) -> _C:
        """Return the client *route* selects.

        Raises:
            RuntimeError: *route* names a proxy the configuration does not have (a route
                decided by another configuration: a bug in carto_proxy).
        """
        if route.proxy is None:
            return self.direct
        try:
            return self.proxied[route.proxy]
        except KeyError:
            raise RuntimeError(
                f"carto_proxy bug: the route to {route.target.authority} names a proxy this "
                "client was not configured with"
            ) from None

    def all(self) -> list[_C]:
        """Every client built so far, the direct one first."""
        return [self.direct, *self.proxied.values()]


def built_here(registry: Mapping[Any, _C], client: object, needed: str) -> _C:
    """What *registry* (a weak mapping filled as clients are built) holds for *client*.

    Raises:
        TypeError: *client* is not in it (``route_for()`` on a client carto_proxy did not
            build); the message says what *needed* is.
    """
    try:
        found = registry.get(client)
    except TypeError:  # not weakly referenceable: not a client at all
        found = None
    if found is None:
        raise TypeError(
            f"route_for() needs {needed}, not this {type(client).__name__}: it does not route "
            "by a ProxyConfig"
        )
    return found


def import_extra(module: str, extra: str) -> ModuleType:
    """Import *module*, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(extra, module.partition(".")[0]) from error


def refuse_arguments(
    given: Mapping[str, Any], names: Iterable[str], *, adapter: str, fix: str
) -> None:
    """Raise :class:`ConfigError` when *given* holds any of *names*.

    Those arguments (``proxy=``, ``mounts=``, ``verify=False``…) would let the client route or
    trust on its own, behind carto_proxy's decision.
    """
    for name in names:
        if name in given:
            raise refusal(
                f"{adapter}({name}=...)",
                "this argument would bypass carto_proxy's routing or TLS settings",
                fix,
            )


def refuse_trust_env(kwargs: MutableMapping[str, Any], *, adapter: str, reads: str) -> None:
    """Take ``trust_env`` out of *kwargs*; raise :class:`ConfigError` unless it is ``False``.

    *reads* says what the client would read from the environment on its own.
    """
    if kwargs.pop("trust_env", False) is not False:
        raise refusal(
            f"{adapter}(trust_env=True)",
            f"{reads} on its own",
            "remove it: carto_proxy reads the environment once, into the ProxyConfig",
        )


def refusal(argument: str, problem: str, fix: str) -> ConfigError:
    """The error (CP400) for *argument*, a caller's setting that carto_proxy will not honour.

    The value is never shown: it may hold a credential or a private path.
    """
    return ConfigError(argument, None, problem, fix, code="CP400")
