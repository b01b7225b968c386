"""record_routes: collect the routing decisions carto_proxy's adapters act on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from carto_proxy._observe import RouteEvent, observe
from carto_proxy._routing import Route

__all__ = ["record_routes"]


@contextmanager
def record_routes() -> Iterator[list[Route]]:
    """Collect, in order, the :class:`~carto_proxy.Route` of every decision adapters act on.

    Every request an adapter sends is routed through one decision, and so is every redirect
    hop; each lands in the yielded list as it is made, from any thread. Nothing reaches the
    network on this account, so a unit test with a mocked transport (respx) can assert which
    way a request *would* have gone, and why. Questions are not recorded: calling
    :meth:`ProxyConfig.route <carto_proxy.ProxyConfig.route>` or an adapter's ``route_for()``
    yourself sends nothing. Built on :func:`carto_proxy.observe`, whose
    :class:`~carto_proxy.RouteEvent` also says which adapter acted, on which URL and hop.

    >>> from carto_proxy import ProxyConfig
    >>> from carto_proxy.adapters.urllib3 import pool_manager
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy:3128"})
    >>> with record_routes() as routes:
    ...     _ = pool_manager(config).connection_from_url("https://api.example.com/v1")
    >>> [(route.target.host, route.action.value, route.rule.value) for route in routes]
    [('api.example.com', 'proxy', 'proxy')]

    Yields:
        The list, filled while the block runs and left as it was at exit.
    """
    routes: list[Route] = []
    lock = threading.Lock()

    def append(event: RouteEvent) -> None:
        with lock:
            routes.append(event.route)

    with observe(append):
        yield routes
