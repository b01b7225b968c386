"""Wait for an item to show up in a log that is read, not notified: poll it with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

_T = TypeVar("_T")


def first_match(
    items: Callable[[], Iterable[_T]],
    predicate: Callable[[_T], bool],
    timeout: float,
    *,
    failure: Callable[[], str],
    interval: float = 0.01,
) -> _T:
    """Return the first of ``items()`` matching ``predicate``, asking again until ``timeout``.

    Raises:
        AssertionError: nothing matched within ``timeout``; the message is ``failure()``,
            called then, so that it can show what the log holds at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        for item in items():
            if predicate(item):
                return item
        if time.monotonic() >= deadline:
            raise AssertionError(failure())
        time.sleep(interval)
