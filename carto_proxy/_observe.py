"""Who hears about each decision an adapter acts on: observers, the ``carto_proxy.route`` log
and the current OpenTelemetry span.

Adapters publish every decision they act on (each request, each redirect hop, each gRPC
channel, each Snowflake connection) through :func:`publish`, after asking :func:`watched`
whether anyone listens: an observer, the log enabled for DEBUG, OpenTelemetry loaded by the
application, or a route whose direct egress must be announced. With nobody listening, that
one function call is the whole cost on the request path.

OpenTelemetry is never imported here: a span can only be recording once the application has
imported ``opentelemetry.trace`` itself, so its presence in :data:`sys.modules` is the test.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlsplit

from ._routing import Route, Rule

__all__ = [
    "RouteEvent",
    "add_observer",
    "describe_event",
    "event_url",
    "observe",
    "publish",
    "watched",
]

LOG = logging.getLogger("carto_proxy.route")
# A library's records reach the application's handlers; without any, they stay silent rather
# than falling to logging's last-resort handler on standard error.
LOG.addHandler(logging.NullHandler())

_DEBUG = logging.DEBUG
_OTEL = "opentelemetry.trace"
_WARNED_LIMIT = 4096  # distinct direct-egress routes remembered; beyond it, warn again


class RouteEvent(NamedTuple):
    """One decision an adapter acted on, as observers receive it.

    An immutable record. The URL is safe to log: it never holds user information, a query
    or a fragment.

    Attributes:
        route: the decision.
        adapter: the adapter that acted: ``"httpx"``, ``"urllib3"``, ``"requests"``,
            ``"aiohttp"``, ``"grpc"``, ``"bigquery"`` or ``"snowflake"``.
        method: the HTTP method; ``None`` where there is none (a gRPC channel, Snowflake
            connection parameters).
        url: where the request goes: ``scheme://host:port/path`` with the normalised host and
            effective port, or the normalised target (``grpc://host:port``) for what is not a
            URL.
        hop: ``0`` for the request, ``1``, ``2``… for each redirect hop the adapter follows.
    """

    route: Route
    adapter: str
    method: str | None
    url: str
    hop: int = 0


_lock = threading.Lock()
_observers: tuple[Callable[[RouteEvent], None], ...] = ()
_warned: set[Route] = set()


def add_observer(callback: Callable[[RouteEvent], None]) -> Callable[[], None]:
    """Call *callback* with a :class:`RouteEvent` for every decision an adapter acts on.

    The callback runs in the thread that makes the request, so it must be quick and
    thread-safe. One that raises is logged on ``carto_proxy.route`` and never breaks the
    request. For a long-running service; in a block, prefer :func:`observe`.

    >>> events = []
    >>> remove = add_observer(events.append)
    >>> remove()

    Returns:
        A function that removes the observer again (calling it twice is harmless).
    """
    global _observers
    with _lock:
        _observers = (*_observers, callback)
    removed = False

    def remove() -> None:
        global _observers
        nonlocal removed
        with _lock:
            if removed:
                return
            removed = True
            remaining = list(_observers)
            remaining.remove(callback)
            _observers = tuple(remaining)

    return remove


@contextmanager
def observe(callback: Callable[[RouteEvent], None]) -> Iterator[None]:
    """Call *callback* with every :class:`RouteEvent` while inside the block.

    See :func:`add_observer`; observers nest, and each is removed when its block ends.

    >>> from carto_proxy import ProxyConfig
    >>> from carto_proxy.adapters.urllib3 import pool_manager
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy:3128"})
    >>> seen = []
    >>> with observe(seen.append):
    ...     _ = pool_manager(config).connection_from_url("https://api.example.com/v1?key=secret")
    >>> [(e.adapter, e.url, e.route.action.value) for e in seen]
    [('urllib3', 'https://api.example.com:443', 'proxy')]
    """
    remove = add_observer(callback)
    try:
        yield
    finally:
        remove()


def watched(route: Route) -> bool:
    """Whether publishing *route* would reach anyone: the request path's only check."""
    return bool(
        _observers or route.needs_direct_egress or LOG.isEnabledFor(_DEBUG) or _OTEL in sys.modules
    )


def publish(route: Route, adapter: str, method: str | None, url: object, hop: int) -> None:
    """Tell observers, the log and the current span that *adapter* acts on *route*.

    Args:
        route: the decision.
        adapter: the adapter's name (see :class:`RouteEvent`).
        method: the HTTP method, or ``None``.
        url: the request's URL (or the target) as the adapter has it; it is redacted here.
        hop: the redirect hop, 0 for the request.
    """
    if route.needs_direct_egress:
        _warn_direct_egress(route, adapter)
    tracing = _OTEL in sys.modules
    debug = LOG.isEnabledFor(_DEBUG)
    if not (_observers or debug or tracing):
        return
    if tracing:
        _annotate_span(route)
    event = RouteEvent(route, adapter, method, event_url(url, route), hop)
    if debug:
        LOG.debug(
            describe_event(event), extra={"carto_proxy_route": route, "carto_proxy_event": event}
        )
    for observer in _observers:
        try:
            observer(event)
        except Exception:  # an observer never breaks the request it watches
            LOG.exception("route observer %r failed; the request goes on", observer)


def describe_event(event: RouteEvent) -> str:
    """One line for people, e.g. ``GET https://api.example.com:443/v1 → PROXY via
    http://proxy:3128 (rule proxy, HTTPS_PROXY) [httpx]``."""
    route = event.route
    head = f"{event.method} {event.url}" if event.method else event.url
    if route.proxy is not None:
        why = f"via {route.proxy} (rule {route.rule}, {route.variable})"
    elif route.matched_entry is not None:
        why = f"(rule {route.rule}, {route.variable} entry {route.matched_entry!r})"
    elif route.rule is Rule.NO_PROXY_CONFIGURED:
        why = f"(rule {route.rule}, {route.variable} unset)"
    else:
        why = f"(rule {route.rule})"
    hop = f" hop {event.hop}" if event.hop else ""
    return f"{head} → {route.action.value.upper()} {why} [{event.adapter}{hop}]"


def event_url(url: object, route: Route) -> str:
    """*url* without user information, query or fragment, on the route's normalised host.

    What is not a URL (``host:port``, a gRPC target) becomes the normalised target.
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. unbalanced IPv6 brackets: the router read it, urlsplit cannot
        return str(route.target)
    if not (parts.scheme and parts.netloc):
        return str(route.target)
    return f"{parts.scheme.lower()}://{route.target.authority}{parts.path}"


def _warn_direct_egress(route: Route, adapter: str) -> None:
    """Warn once per distinct route that the firewall must allow this direct egress."""
    with _lock:
        if route in _warned:
            return
        if len(_warned) >= _WARNED_LIMIT:
            _warned.clear()
        _warned.add(route)
    LOG.warning(
        "%s needs direct egress (rule %s): %s [%s]",
        route.target.authority,
        route.rule,
        route.reason,
        adapter,
        extra={"carto_proxy_route": route},
    )


def _annotate_span(route: Route) -> None:
    """Set the route's attributes on the application's current span, if it is recording."""
    trace = sys.modules.get(_OTEL)
    try:
        span = trace.get_current_span()  # type: ignore[union-attr]
        if not span.is_recording():
            return
        attributes = {
            "carto_proxy.action": route.action.value,
            "carto_proxy.rule": route.rule.value,
        }
        if route.proxy is not None:
            attributes["carto_proxy.proxy"] = str(route.proxy)  # ProxyURL holds no user info
        if route.matched_entry is not None:
            attributes["carto_proxy.matched_entry"] = route.matched_entry
        span.set_attributes(attributes)
    except Exception:  # tracing never breaks the request it describes
        LOG.debug("could not annotate the current OpenTelemetry span", exc_info=True)
