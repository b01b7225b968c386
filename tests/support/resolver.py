"""Fake DNS for the test process: test names resolve to loopback, everything else is refused.

Patches ``socket.getaddrinfo`` and ``socket.gethostbyname`` (module attributes, so every Python
caller that looks them up at call time is covered: ``socket.create_connection``, urllib3, httpx
and asyncio). It does not affect resolvers written in C that bypass the ``socket`` module, such
as gRPC's c-ares resolver, nor Squid, which has its own ``hosts_file``.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from tests.support.names import LOOPBACK, TEST_HOSTS

_AddrInfo = list[
    tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[Any, ...]]
]


class FakeDNS:
    """Context manager: resolve ``hosts`` (name → IP) and IP literals, refuse every other name.

    ``localhost`` maps to 127.0.0.1 unless ``hosts`` says otherwise. Every name looked up is
    recorded in :attr:`lookups`, so a test can assert that a proxied host was *not* resolved
    locally; refused names are also in :attr:`refused`.
    """

    def __init__(self, hosts: Mapping[str, str] = TEST_HOSTS) -> None:
        self._hosts = {"localhost": LOOPBACK}
        self._hosts.update({_normalise(name): ip for name, ip in hosts.items()})
        self._lock = threading.Lock()
        self._lookups: list[str] = []
        self._refused: list[str] = []
        self._original_getaddrinfo: Any = None
        self._original_gethostbyname: Any = None

    def add(self, name: str, ip: str = LOOPBACK) -> None:
        """Map one more name (takes effect immediately, also while active)."""
        ipaddress.ip_address(ip)
        with self._lock:
            self._hosts[_normalise(name)] = ip

    @property
    def lookups(self) -> list[str]:
        """Normalised names looked up so far (IP literals and ``None`` excluded), in order."""
        with self._lock:
            return list(self._lookups)

    @property
    def refused(self) -> list[str]:
        """Names that were refused, in order."""
        with self._lock:
            return list(self._refused)

    def resolved(self, name: str) -> bool:
        """Return whether ``name`` was looked up (successfully or not) in this process."""
        return _normalise(name) in self.lookups

    def _address_for(self, host: str) -> str:
        """Return the IP to resolve ``host`` with, or raise ``socket.gaierror``."""
        name = _normalise(host)
        if _is_ip_literal(name):
            return host
        with self._lock:
            self._lookups.append(name)
            ip = self._hosts.get(name)
            if ip is None:
                self._refused.append(name)
        if ip is None:
            raise socket.gaierror(
                socket.EAI_NONAME,
                f"fake_dns: {name!r} is not a test host name; real DNS is disabled in tests",
            )
        return ip

    def _getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _AddrInfo:
        if host is None:
            return self._original_getaddrinfo(host, port, family, type, proto, flags)  # type: ignore[no-any-return]
        text = host.decode("idna") if isinstance(host, bytes) else host
        address = self._address_for(text)
        # AI_NUMERICHOST: the real resolver may parse the literal but never look anything up.
        return self._original_getaddrinfo(  # type: ignore[no-any-return]
            address, port, family, type, proto, flags | socket.AI_NUMERICHOST
        )

    def _gethostbyname(self, host: str) -> str:
        address = self._address_for(host)
        if ipaddress.ip_address(address.split("%")[0]).version != 4:
            raise socket.gaierror(socket.EAI_FAMILY, f"fake_dns: {host!r} has no IPv4 address")
        return address

    def __enter__(self) -> FakeDNS:
        if self._original_getaddrinfo is not None:
            raise RuntimeError("FakeDNS is already active")
        self._original_getaddrinfo = socket.getaddrinfo
        self._original_gethostbyname = socket.gethostbyname
        socket.getaddrinfo = self._getaddrinfo  # type: ignore[assignment]
        socket.gethostbyname = self._gethostbyname
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        socket.getaddrinfo = self._original_getaddrinfo
        socket.gethostbyname = self._original_gethostbyname
        self._original_getaddrinfo = self._original_gethostbyname = None


def _normalise(name: str) -> str:
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def _is_ip_literal(name: str) -> bool:
    try:
        # Strip an IPv6 zone ("fe80::1%eth0"): ipaddress on py3.10 rejects it.
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True
