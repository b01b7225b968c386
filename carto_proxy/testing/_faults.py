"""The faults a RecordingProxy injects: refusals, upstream failures, cut tunnels, latency."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from carto_proxy.testing._upstreams import Key, lookup

__all__ = ["Faults", "Refusal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """An answer the proxy gives instead of connecting upstream."""

    status: int
    error: str


class Faults:
    """Faults to inject, keyed by ``(host, port)`` or ``(host, None)``; safe to change live."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refuse: dict[Key, int] = {}
        self._fail: dict[Key, int] = {}
        self._cut: dict[Key, int] = {}
        self._latency: dict[Key, float] = {}
        self._latency_all = 0.0

    def refuse(self, key: Key, status: int) -> None:
        """Answer ``status`` for ``key``."""
        with self._lock:
            self._refuse[key] = status

    def fail(self, key: Key) -> None:
        """Answer ``502`` for ``key``, as if its upstream were down."""
        with self._lock:
            self._fail[key] = 502

    def cut(self, key: Key, after_bytes: int) -> None:
        """Close tunnels for ``key`` after ``after_bytes`` payload bytes."""
        with self._lock:
            self._cut[key] = after_bytes

    def latency(self, key: Key | None, seconds: float) -> None:
        """Delay answers for ``key`` (``None``: for every host) by ``seconds``."""
        with self._lock:
            if key is None:
                self._latency_all = seconds
            else:
                self._latency[key] = seconds

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            for table in (self._refuse, self._fail, self._cut, self._latency):
                table.clear()
            self._latency_all = 0.0

    def delay(self, host: str, port: int) -> float:
        """Seconds to wait before answering ``host:port``: its own delay, else the global one."""
        with self._lock:
            found = lookup(self._latency, host, port)
            return self._latency_all if found is None else found

    def refusal(self, host: str, port: int) -> Refusal | None:
        """The refusal or failure injected for ``host:port``, if any (a refusal wins)."""
        with self._lock:
            status = lookup(self._refuse, host, port)
            failed = lookup(self._fail, host, port)
        if status is not None:
            return Refusal(status=status, error=f"refused by fault injection (refuse {host})")
        if failed is not None:
            return Refusal(status=502, error=f"upstream failure injected (fail_upstream {host})")
        return None

    def cut_after(self, host: str, port: int) -> int | None:
        """Payload bytes after which to cut a tunnel to ``host:port``; ``None`` for never."""
        with self._lock:
            return lookup(self._cut, host, port)
