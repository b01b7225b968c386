"""Fake DNS for the test process: test names resolve to loopback, everything else is refused.

A :class:`~carto_proxy.testing.DirectGuard` under the names the test suite uses. Like the
guard, it covers every Python caller of ``socket.getaddrinfo`` and ``socket.gethostbyname``,
but not resolvers written in C that bypass the ``socket`` module, such as gRPC's c-ares
resolver, nor Squid, which has its own ``hosts_file``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from carto_proxy.testing._direct import DirectGuard
from tests.support.names import LOOPBACK, TEST_HOSTS

_HINT = "it is not a test host name; real DNS is disabled in tests"


class FakeDNS:
    """Context manager: resolve ``hosts`` (name → IP) and IP literals, refuse every other name.

    ``localhost`` maps to 127.0.0.1 unless ``hosts`` says otherwise. Every name looked up is
    recorded in :attr:`lookups`, so a test can assert that a proxied host was *not* resolved
    locally; refused names are also in :attr:`refused`.
    """

    def __init__(self, hosts: Mapping[str, str] = TEST_HOSTS) -> None:
        # localhost too, so that no name at all reaches the real resolver.
        self._guard = DirectGuard({"localhost": LOOPBACK, **hosts}, hint=_HINT)

    def add(self, name: str, ip: str = LOOPBACK) -> None:
        """Map one more name (takes effect immediately, also while active)."""
        self._guard.add(name, ip)

    @property
    def lookups(self) -> list[str]:
        """Normalised names looked up so far (IP literals and ``None`` excluded), in order."""
        return self._guard.resolved

    @property
    def refused(self) -> list[str]:
        """Names that were refused, in order."""
        return self._guard.blocked

    def resolved(self, name: str) -> bool:
        """Return whether ``name`` was looked up (successfully or not) in this process."""
        return self._guard.went_direct(name)

    def __enter__(self) -> FakeDNS:
        self._guard.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._guard.__exit__(exc_type, exc, tb)
