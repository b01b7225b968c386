"""What no egress audit judges: the testing kit's own servers at work in the audited process.

The testing kit runs stand-ins for a deployment's peers inside the process under test: a
recording proxy, which connects to its upstreams, and local origins, which the code under test
reaches once a guard has mapped a name to them. Their connections are the test's machinery,
not the program's, so :func:`carto_proxy.audit` never counts them:

- :func:`unaudited`: what the current thread looks up and connects to while inside (each of
  the kit's connection threads runs in it).
- :func:`exempt_address`: connections to a local server a guard sends a name to on a port of
  its own (``DirectGuard({"api.example.com": origin.address})``). The lookup that led the
  client there named the host and port it asked for, and was judged then; the audit cannot
  tie the connection to it, since the guard changed the port.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["exempt_address", "is_exempt_address", "is_unaudited", "unaudited"]

# ``busy`` is set while the thread's events are not judged: inside unaudited(), and while an
# audit does its own work (a log handler's socket, a callback).
_local = threading.local()
_lock = threading.Lock()
_addresses: dict[tuple[str, int], int] = {}  # address: how many exemptions hold it


def is_unaudited() -> bool:
    """Whether the current thread's events are left unjudged (inside :func:`unaudited`)."""
    return bool(getattr(_local, "busy", False))


@contextmanager
def unaudited() -> Iterator[None]:
    """Leave the lookups and connections of the current thread unjudged while inside."""
    previous = getattr(_local, "busy", False)
    _local.busy = True
    try:
        yield
    finally:
        _local.busy = previous


@contextmanager
def exempt_address(host: str, port: int) -> Iterator[None]:
    """Leave connections to ``host:port`` (a local server's IP address) unjudged while inside.

    Raises:
        ValueError: *host* is not an IP address.
    """
    address = (str(ipaddress.ip_address(host)), port)
    with _lock:
        _addresses[address] = _addresses.get(address, 0) + 1
    try:
        yield
    finally:
        with _lock:
            if _addresses[address] == 1:
                del _addresses[address]
            else:
                _addresses[address] -= 1


def is_exempt_address(host: str, port: int | None) -> bool:
    """Whether a connection to ``host:port`` goes to an exempt local server."""
    return port is not None and (host.lower(), port) in _addresses
