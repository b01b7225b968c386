"""Route observers: adapters report every decision here, so tests can see them.

:func:`carto_proxy.testing.record_routes` subscribes; nothing else does. With no subscriber
:func:`notify` costs one truthiness check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ._routing import Route

__all__ = ["notify", "observe"]

_lock = threading.Lock()
_observers: tuple[Callable[[Route], None], ...] = ()


def notify(route: Route) -> None:
    """Tell every observer about a decision an adapter acted on."""
    for observer in _observers:
        observer(route)


@contextmanager
def observe(callback: Callable[[Route], None]) -> Iterator[None]:
    """Call *callback* with every route adapters act on, from any thread, while inside."""
    global _observers
    with _lock:
        _observers = (*_observers, callback)
    try:
        yield
    finally:
        with _lock:
            remaining = list(_observers)
            remaining.remove(callback)
            _observers = tuple(remaining)
