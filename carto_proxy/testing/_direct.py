"""DirectGuard: see, and by default refuse, the host names this process resolves itself.

Behind a forward proxy a client never resolves a proxied name: it sends ``CONNECT host:port``
and the proxy resolves it. So while a test runs with a proxy configured, every name the
process looks up is a connection about to go *direct*. The guard records those names and,
unless told otherwise, refuses them with an error that names the host, which also keeps a
connector that ignores the proxy from reaching the real internet from a unit test.

It patches ``socket.getaddrinfo`` and ``socket.gethostbyname`` (module attributes, which
``socket.create_connection``, urllib3, requests, httpx and asyncio look up at call time). It
cannot see resolvers written in C that bypass the ``socket`` module, such as gRPC's c-ares
resolver.

A name it answers or refuses still raises the ``socket.getaddrinfo`` audit event first (PEP
578), through a numeric-only lookup that never reaches a resolver: audit hooks, such as
:func:`carto_proxy.audit`'s, see the name the client asked for, not the address it is mapped to.
"""

from __future__ import annotations

import _socket
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Mapping
from typing import Any

from carto_proxy._unaudited import exempt_address

__all__ = ["LOCAL_NAMES", "DirectGuard"]

_AddrInfo = list[tuple[Any, ...]]
_DEFAULT_HINT = "map it to a local server with DirectGuard.add(), or use block=False"
# Names the real resolver may answer unless mapped: they never leave the machine.
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class DirectGuard:
    """Record, and by default refuse, every host name this process resolves itself.

    IP literals always resolve as usual and are not recorded; so does ``localhost``, unless
    ``hosts`` maps it. A name given in ``hosts`` resolves to its address, as a hosts file
    would; with ``(ip, port)`` the port is replaced too, so ``https://api.example.com/`` can
    reach a local server listening on any port (and no egress audit judges the connections to
    that address: the lookup that led there was judged, by the name and port asked for). Any
    other name is refused with
    :class:`socket.gaierror` while ``block`` is true (the default), and resolved for real
    otherwise. Use it as a context manager; guards nest, innermost first, and must be left in
    the reverse order they were entered.

    >>> import socket
    >>> with DirectGuard({"db.internal": "127.0.0.1"}) as guard:
    ...     socket.getaddrinfo("db.internal", 5432)[0][4]
    ...     try:
    ...         socket.getaddrinfo("api.example.com", 443)
    ...     except socket.gaierror as error:
    ...         print(error.strerror.partition(":")[0])
    ('127.0.0.1', 5432)
    carto_proxy
    >>> guard.resolved
    ['db.internal', 'api.example.com']

    Args:
        hosts: names to resolve, mapped to an IP address or to ``(ip, port)``.
        block: refuse names not in ``hosts``; ``False`` lets the real resolver answer them.
        hint: what the refusal message suggests doing about it.
    """

    def __init__(
        self,
        hosts: Mapping[str, str | tuple[str, int]] | None = None,
        *,
        block: bool = True,
        hint: str = _DEFAULT_HINT,
    ) -> None:
        self._block = block
        self._hint = hint
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[str, int | None]] = {}
        self._resolved: list[str] = []
        self._blocked: list[str] = []
        self._saved: tuple[Any, Any] | None = None
        self._exempt: contextlib.ExitStack | None = None  # while active: the mapped addresses
        for name, address in (hosts or {}).items():
            self.add(name, address)

    def add(self, host: str, address: str | tuple[str, int] = "127.0.0.1") -> None:
        """Resolve ``host`` to ``address`` (an IP, or ``(ip, port)``); takes effect at once.

        Raises:
            ValueError: the address is not an IP address.
        """
        ip, port = (address, None) if isinstance(address, str) else address
        ipaddress.ip_address(ip)
        with self._lock:
            self._hosts[_normalise(host)] = (ip, port)
            if self._exempt is not None and port is not None:
                self._exempt.enter_context(exempt_address(ip, port))

    @property
    def block(self) -> bool:
        """Whether names not added are refused."""
        return self._block

    @property
    def resolved(self) -> list[str]:
        """Names this process looked up (lowercase; IP literals and unmapped localhost left out)."""
        with self._lock:
            return list(self._resolved)

    @property
    def blocked(self) -> list[str]:
        """Names that were refused, in order."""
        with self._lock:
            return list(self._blocked)

    def went_direct(self, host: str) -> bool:
        """Return whether this process looked ``host`` up itself, i.e. tried to go direct."""
        return _normalise(host) in self.resolved

    def clear(self) -> None:
        """Forget the names recorded so far (the ``hosts`` mapping stays)."""
        with self._lock:
            self._resolved.clear()
            self._blocked.clear()

    # --- the patch ------------------------------------------------------------------------------

    def __enter__(self) -> DirectGuard:
        if self._saved is not None:
            raise RuntimeError("this DirectGuard is already active")
        with self._lock:
            self._exempt = contextlib.ExitStack()
            for ip, port in self._hosts.values():
                if port is not None:
                    self._exempt.enter_context(exempt_address(ip, port))
        self._saved = (socket.getaddrinfo, socket.gethostbyname)
        socket.getaddrinfo = self._getaddrinfo
        socket.gethostbyname = self._gethostbyname
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._saved is not None:
            socket.getaddrinfo, socket.gethostbyname = self._saved
            self._saved = None
        with self._lock:
            exempt, self._exempt = self._exempt, None
        if exempt is not None:
            exempt.close()

    def maps(self, host: str) -> bool:
        """Return whether ``host`` is mapped to an address (``add`` or ``hosts``)."""
        with self._lock:
            return _normalise(host) in self._hosts

    def _mapping_for(
        self, host: bytes | str, port: bytes | str | int | None, family: int, type: int, proto: int
    ) -> tuple[str, int | None] | None:
        """Return the address to use, ``None`` to resolve as usual, or raise when refused.

        A name it answers or refuses is announced first (:func:`_announce`): what an audit hook
        raises for it is a refusal too.
        """
        name = _normalise(host.decode("ascii", "replace") if isinstance(host, bytes) else host)
        if _is_ip_literal(name):
            return None
        with self._lock:
            mapped = self._hosts.get(name)
            if mapped is None and name in LOCAL_NAMES:
                return None
            self._resolved.append(name)
        if mapped is None and not self._block:
            return None  # the real resolver raises the audit event itself
        try:
            _announce(host, port, family, type, proto)
        except BaseException:
            with self._lock:
                self._blocked.append(name)
            raise
        if mapped is None:
            with self._lock:
                self._blocked.append(name)
            raise socket.gaierror(
                socket.EAI_NONAME,
                f"carto_proxy: {name} went direct: this process resolved it itself instead of "
                f"sending it through the proxy, and direct connections to names are blocked "
                f"in this test ({self._hint})",
            )
        return mapped

    def _getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _AddrInfo:
        assert self._saved is not None
        original = self._saved[0]
        if host is not None:
            mapped = self._mapping_for(host, port, family, type, proto)
            if mapped is not None:
                ip, new_port = mapped
                host, port = ip, port if new_port is None else new_port
                flags |= socket.AI_NUMERICHOST  # never let the real resolver near it
        return original(host, port, family, type, proto, flags)  # type: ignore[no-any-return]

    def _gethostbyname(self, host: str) -> str:
        assert self._saved is not None
        mapped = self._mapping_for(host, None, 0, 0, 0)
        # The real function even for a mapped name: it refuses an IPv6 address, as it should.
        return self._saved[1](host if mapped is None else mapped[0])  # type: ignore[no-any-return]


def _announce(
    host: bytes | str, port: bytes | str | int | None, family: int, type: int, proto: int
) -> None:
    """Raise the ``socket.getaddrinfo`` audit event for *host* without resolving anything.

    The C function raises the event, then fails at once for a name: ``AI_NUMERICHOST``
    forbids any resolver. What an audit hook raises (a refusal) goes through.
    """
    with contextlib.suppress(socket.gaierror):
        _socket.getaddrinfo(host, port, family, type, proto, socket.AI_NUMERICHOST)


def _normalise(name: str) -> str:
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%")[0])  # "fe80::1%eth0": a zone is still a literal
    except ValueError:
        return False
    return True
