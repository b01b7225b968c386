"""urllib3 connections whose proxy handshake is bounded (``proxy_handshake_timeout=``).

urllib3 sends CONNECT and reads its answer inside ``HTTPConnection.connect`` with the connect
timeout as the timeout of each socket call, so a proxy answering one byte at a time holds the
connection for as long as it likes. These connection classes put the whole handshake — TCP
connect to the proxy, the TLS handshake with an ``https://`` proxy, CONNECT sent → tunnel
ready — under one :class:`~carto_proxy.adapters._handshake.Deadline`: by default the connect
timeout, or the adapter's ``proxy_handshake_timeout``. Only connections to or through a proxy
are bounded; the TLS handshake with the origin (inside the tunnel) is not part of it.

The hooks are urllib3 2.x's ``connect``, ``_new_conn`` (which creates the socket) and
``_tunnel`` (which sends CONNECT and reads the answer).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from carto_proxy.adapters._common import import_extra
from carto_proxy.adapters._handshake import Deadline, describe_timeout

if TYPE_CHECKING:
    import socket

    import urllib3
    import urllib3.connection
    import urllib3.connectionpool
else:
    urllib3 = import_extra("urllib3", "urllib3")
    import_extra("urllib3.connection", "urllib3")
    import_extra("urllib3.connectionpool", "urllib3")

__all__ = ["bounded_pool_classes"]


class _Bounded:
    """Mixin for urllib3's connection classes: one deadline on the proxy handshake."""

    carto_proxy_handshake_timeout: float | None = None
    _carto_proxy_deadline: Deadline | None = None
    proxy: Any
    timeout: Any

    def connect(self) -> None:
        seconds = self.carto_proxy_handshake_timeout or _connect_timeout(self.timeout)
        if self.proxy is None or seconds is None:
            super().connect()  # type: ignore[misc]
            return
        deadline = self._carto_proxy_deadline = Deadline(seconds)
        try:
            super().connect()  # type: ignore[misc]
        except Exception as error:
            if deadline.finish():
                raise self._timed_out(deadline) from error
            raise
        finally:
            # Whatever ended the handshake, a KeyboardInterrupt or a cancellation included:
            # finishing closes the duplicated descriptor the deadline watches.
            expired = deadline.finish()
            self._carto_proxy_deadline = None
        if expired:  # expired as the handshake ended: the socket is shut down
            raise self._timed_out(deadline)

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if self._carto_proxy_deadline is not None:
            self._carto_proxy_deadline.watch(sock)
        return sock

    def _tunnel(self) -> None:
        super()._tunnel()  # type: ignore[misc]
        deadline = self._carto_proxy_deadline
        if deadline is not None and deadline.finish():  # the tunnel is ready: the bound ends
            raise self._timed_out(deadline)

    def _timed_out(self, deadline: Deadline) -> urllib3.exceptions.ConnectTimeoutError:
        close = getattr(self, "close", None)
        if callable(close):
            close()
        proxy = self.proxy.url if self.proxy is not None else "the proxy"
        return urllib3.exceptions.ConnectTimeoutError(
            self, describe_timeout(proxy, deadline.seconds)
        )


def _connect_timeout(timeout: object) -> float | None:
    seconds = urllib3.util.Timeout.resolve_default_timeout(timeout)  # type: ignore[arg-type]
    return float(seconds) if seconds else None


@functools.lru_cache(maxsize=16)
def bounded_pool_classes(
    seconds: float | None,
) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    """``pool_classes_by_scheme`` for a manager whose proxy handshakes are bounded.

    *seconds* is the bound (``None``: each connection's connect timeout).
    """
    namespace = {"carto_proxy_handshake_timeout": seconds}
    http = type("BoundedHTTPConnection", (_Bounded, urllib3.connection.HTTPConnection), namespace)
    https = type(
        "BoundedHTTPSConnection", (_Bounded, urllib3.connection.HTTPSConnection), namespace
    )
    return {
        "http": type(
            "BoundedHTTPConnectionPool",
            (urllib3.connectionpool.HTTPConnectionPool,),
            {"ConnectionCls": http},
        ),
        "https": type(
            "BoundedHTTPSConnectionPool",
            (urllib3.connectionpool.HTTPSConnectionPool,),
            {"ConnectionCls": https},
        ),
    }
