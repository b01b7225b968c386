"""record_routes: collect the routing decisions carto_proxy's adapters act on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from carto_proxy._observers import observe
from carto_proxy._routing import Route

__all__ = ["record_routes"]


@contextmanager
def record_routes() -> Iterator[list[Route]]:
    """Collect, in order, the :class:`~carto_proxy.Route` of every decision adapters act on.

    Every request an adapter sends is routed through one decision, and so is every redirect
    hop; each lands in the yielded list as it is made, from any thread. Nothing reaches the
    network on this account, so a unit test with a mocked transport (respx) can assert which
    way a request *would* have gone, and why. Decisions made by calling
    :meth:`ProxyConfig.route <carto_proxy.ProxyConfig.route>` directly are not recorded:
    they are questions, not connections.

    >>> from carto_proxy import ProxyConfig
    >>> from carto_proxy.adapters._common import report_route
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://proxy:3128"})
    >>> with record_routes() as routes:
    ...     _ = report_route(config, "https://api.example.com/v1")
    >>> [(route.target.host, route.action.value, route.rule.value) for route in routes]
    [('api.example.com', 'proxy', 'proxy')]

    Yields:
        The list, filled while the block runs and left as it was at exit.
    """
    routes: list[Route] = []
    lock = threading.Lock()

    def append(route: Route) -> None:
        with lock:
            routes.append(route)

    with observe(append):
        yield routes
