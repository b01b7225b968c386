"""Bounding the proxy handshake of an httpx request (``proxy_handshake_timeout=``).

httpcore reads the answer to CONNECT with the read timeout of each socket call, so a proxy
answering one byte at a time stretches the handshake without limit. The routing transport
follows each proxied request through httpcore's public ``trace`` extension, which reports in
the request's own thread or task when a connection is opened (``connection.connect_tcp``),
when TLS starts (``connection.start_tls``: with an ``https://`` proxy, its handshake) and when
the answer to CONNECT has arrived (the first ``http11.receive_response_headers``): the whole
proxy handshake runs under one deadline, by default the request's connect timeout.

A request that reuses a pooled connection or tunnel opens nothing, so no deadline starts.
Synchronously, an expired deadline shuts the connection's socket down
(:class:`~carto_proxy.adapters._handshake.Deadline`); asynchronously it is the deadline of an
anyio cancel scope around the request.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from carto_proxy._routing import Route
from carto_proxy.adapters._common import explain, import_extra
from carto_proxy.adapters._handshake import Deadline, describe_timeout

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_extra("httpx", "httpx")

__all__ = ["AsyncHandshake", "SyncHandshake", "timed_out"]

_OPENED = "connection.connect_tcp.started"
_CONNECTED = "connection.connect_tcp.complete"
_PROXY_TLS = "connection.start_tls.complete"
_ANSWERED = "http11.receive_response_headers.complete"

Trace = Callable[[str, dict[str, Any]], Any]


class _Handshake:
    """Which traced event ends the handshake of one request, and the bound to put on it.

    Args:
        seconds: the bound; ``None``: the request's connect timeout.
        tunnel: the request goes through a CONNECT tunnel (an ``https://`` target), rather
            than being forwarded (then only the TLS handshake with an ``https://`` proxy is
            part of the handshake).
        request_extensions: the request's extensions (timeouts, and any trace of the caller's
            own, which still hears every event).
    """

    def __init__(
        self, seconds: float | None, *, tunnel: bool, request_extensions: dict[str, Any]
    ) -> None:
        connect = (request_extensions.get("timeout") or {}).get("connect")
        self.seconds = seconds or connect
        self._end = _ANSWERED if tunnel else _PROXY_TLS
        self._extensions = request_extensions
        self._theirs: Trace | None = request_extensions.get("trace")
        self.started = False
        self.ended = False

    trace: Trace  # the subclass's

    def install(self) -> None:
        """Follow the request with :meth:`trace` (which calls the caller's own trace in turn)."""
        self._extensions["trace"] = self.trace

    def detach(self) -> None:
        """Stop following the request: give the caller's own trace back (or none).

        httpcore looks the extension up for each step, so a request on a pooled connection
        pays for the first traced step only.
        """
        if self._theirs is None:
            self._extensions.pop("trace", None)
        else:
            self._extensions["trace"] = self._theirs

    def _moment(self, event: str) -> str | None:
        """``"start"``, ``"end"`` or ``None`` for a traced *event* of this request."""
        if not self.started:
            if event == _OPENED and self.seconds:
                self.started = True
                return "start"
            self.detach()  # a pooled connection or tunnel: no handshake to bound
        elif not self.ended and event == self._end:
            self.ended = True
            self.detach()
            return "end"
        return None


class SyncHandshake(_Handshake):
    """The handshake of one request of a synchronous client: install :meth:`trace`."""

    deadline: Deadline | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        moment = self._moment(event)
        if moment == "start":
            self.deadline = Deadline(float(self.seconds or 0))
        elif moment == "end":
            self.finish()
        elif event == _CONNECTED and self.deadline is not None:
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                self.deadline.watch(sock)
        if self._theirs is not None:
            self._theirs(event, info)

    def finish(self) -> bool:
        """End the bound (if it started); return whether it expired."""
        return self.deadline is not None and self.deadline.finish()


class AsyncHandshake(_Handshake):
    """The handshake of one request of an asynchronous client: run the request inside
    :attr:`scope` and install :meth:`trace`."""

    def __init__(
        self, seconds: float | None, *, tunnel: bool, request_extensions: dict[str, Any]
    ) -> None:
        super().__init__(seconds, tunnel=tunnel, request_extensions=request_extensions)
        self.scope = anyio.CancelScope()
        self._stream: Any = None

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        moment = self._moment(event)
        if moment == "start":
            self.scope.deadline = anyio.current_time() + float(self.seconds or 0)
        elif moment == "end":
            self.scope.deadline = math.inf
            self._stream = None
        elif event == _CONNECTED and self.started and not self.ended:
            self._stream = info["return_value"]
        if self._theirs is not None:
            result = self._theirs(event, info)
            if isinstance(result, Awaitable):
                await result

    async def abandon(self) -> None:
        """Close the connection a cancelled handshake leaves behind.

        httpcore closes a stream whose TLS handshake fails, but not one whose handshake is
        cancelled.
        """
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()


def timed_out(route: Route, seconds: float | None) -> httpx.ConnectTimeout:
    """The error of a handshake the deadline cut short, naming the proxy and the route."""
    return httpx.ConnectTimeout(explain(describe_timeout(route.proxy, seconds or 0), route))
