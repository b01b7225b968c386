"""Where RecordingProxy may connect, and the ``host`` / ``host:port`` keys of its tables.

The proxy connects only to loopback literals and to the upstreams it was given, and never
resolves a name to decide: a test can send real host names through it without DNS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from carto_proxy._hosts import as_ip, split_authority

__all__ = ["Address", "Key", "Upstreams", "key_of", "lookup", "loopback_literal"]

Key = tuple[str, int | None]
"""``(host, port)`` for one port, ``(host, None)`` for any port; the host lowercase."""
Address = tuple[str, int]
"""An IP address (or ``"localhost"`` as ``"127.0.0.1"``) and a port to connect to."""

_V = TypeVar("_V")


def key_of(text: str) -> Key:
    """Parse ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` into a table key.

    Raises:
        ValueError: it cannot be parsed.
    """
    host, port, _ = split_authority(text.strip())
    if not host:
        raise ValueError(f"{text!r} names no host")
    return host.lower(), port


def lookup(table: Mapping[Key, _V], host: str, port: int) -> _V | None:
    """Find the entry for ``host:port`` first, then for ``host`` on any port."""
    found = table.get((host, port))
    return table.get((host, None)) if found is None else found


def loopback_literal(host: str) -> str | None:
    """Return the address to connect to for a loopback host, without resolving any name."""
    if host == "localhost":
        return "127.0.0.1"
    address = as_ip(host)
    return str(address) if address is not None and address.is_loopback else None


class Upstreams:
    """The upstreams given to a proxy, checked once.

    Args:
        upstreams: ``"host:port"`` (that port) or ``"host"`` (any port) to
            ``(ip or "localhost", port)``.

    Raises:
        ValueError: a key cannot be parsed, or a value names a host instead of an address.
    """

    def __init__(self, upstreams: Mapping[str, tuple[str, int]]) -> None:
        self._table = {key_of(key): _address(key, value) for key, value in upstreams.items()}

    def address_for(self, host: str, port: int) -> Address | None:
        """Return where to connect for ``host:port``; ``None`` when the proxy may not."""
        mapped = lookup(self._table, host, port)
        if mapped is not None:
            return mapped
        address = loopback_literal(host)
        return None if address is None else (address, port)


def _address(key: str, value: tuple[str, int]) -> Address:
    host, port = value
    if host == "localhost":
        return "127.0.0.1", port
    if as_ip(host) is None:
        raise ValueError(
            f"upstreams[{key!r}] = {value!r}: give an IP address or 'localhost'; "
            "RecordingProxy never resolves names"
        )
    return host, port
