"""Probe real connectivity along the route each host would take.

For each host: connect to the proxy (and complete TLS with an ``https://`` proxy), ask it for
a ``CONNECT`` tunnel, then complete TLS with the origin through the tunnel; or, for a DIRECT
route, connect and complete TLS directly. Every step has a deadline; hosts are probed a few
at a time. The result says whether the host is reachable, refused by the proxy (and with
which status), which TLS hop failed on which certificate, or which step timed out. Nothing is
sent once TLS is up: a handshake proves the path.

Kept apart from the ``probe`` command so that the rest of the CLI does not import ``ssl``,
``socket`` and a thread pool at start-up.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Action, Route
from carto_proxy._target import Protocol
from carto_proxy._version import __version__
from carto_proxy.cli._probe._x509 import CertificateInfo, certificate_info

__all__ = ["RESULTS", "ProbeResult", "probe"]

RESULTS = ("reachable", "refused", "tls_failure", "timeout", "connect_failed", "protocol_error")
"""What a probed host can come to, in the order the summary counts them."""

_MAX_HEAD = 65536


@dataclass(slots=True, kw_only=True)
class ProbeResult:
    """What happened on the way to one host.

    Attributes:
        target: the host or egress entry as given.
        route: the route followed; ``None`` when not probed.
        result: ``reachable``, ``refused``, ``tls_failure``, ``timeout``, ``connect_failed``,
            ``protocol_error`` or ``not_probed``.
        hop: ``proxy`` or ``origin``: where it failed.
        step: ``connect``, ``proxy_tls``, ``connect_response`` or ``tls``: the step that
            failed.
        status: the proxy's HTTP status for ``refused``.
        error: what went wrong, in words.
        certificate: the certificate a TLS failure refused (or the origin's on success).
        timings: milliseconds each step took.
    """

    target: str
    route: Route | None = None
    result: str = "not_probed"
    hop: str | None = None
    step: str | None = None
    status: int | None = None
    error: str | None = None
    certificate: CertificateInfo | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        """Milliseconds spent in all steps."""
        return sum(self.timings.values())


def probe(
    config: ProxyConfig,
    targets: Sequence[tuple[str, str | None]],
    *,
    timeout: float,
    concurrency: int,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """Probe *targets* (``(shown, target)``; ``None`` means not probed), in their order.

    Raises:
        TargetError: a target cannot be parsed (before anything is probed).
    """
    routes: list[tuple[str, Route | None]] = []
    for shown, target in targets:
        if target is None:
            routes.append((shown, None))
            continue
        protocol = Protocol.GRPC if target.lower().startswith("grpc") else None
        routes.append((shown, config.route(target, protocol=protocol)))
    results: list[ProbeResult | None] = [None] * len(routes)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="carto-probe") as pool:
        futures: dict[Future[ProbeResult], int] = {}
        for index, (shown, route) in enumerate(routes):
            if route is None:
                results[index] = ProbeResult(target=shown, error="a wildcard names no host")
                continue
            futures[pool.submit(_probe_one, config, shown, route, timeout)] = index
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            if on_result is not None:
                on_result(result)
    return [r for r in results if r is not None]


class _Failed(Exception):
    def __init__(self, result: str, hop: str, step: str, error: str, status: int | None = None):
        super().__init__(error)
        self.result, self.hop, self.step, self.error, self.status = result, hop, step, error, status


class _Clock:
    def __init__(self, timeout: float, timings: dict[str, float]) -> None:
        self.deadline = time.monotonic() + timeout
        self.timings = timings

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("out of time")
        return remaining


def _probe_one(config: ProxyConfig, shown: str, route: Route, timeout: float) -> ProbeResult:
    result = ProbeResult(target=shown, route=route)
    origin_context = config.ssl_context()
    proxy_context = config.proxy_ssl_context()
    try:
        der = _walk(route, proxy_context, origin_context, _Clock(timeout, result.timings))
    except _Failed as failure:
        result.result, result.hop, result.step = failure.result, failure.hop, failure.step
        result.error, result.status = failure.error, failure.status
        if failure.result == "tls_failure" and "certificate" in failure.error.lower():
            result.certificate = _refused_certificate(route, proxy_context, failure.hop, timeout)
        return result
    result.result = "reachable"
    result.certificate = certificate_info(der) if der else None
    return result


def _walk(
    route: Route,
    proxy_context: ssl.SSLContext,
    origin_context: ssl.SSLContext,
    clock: _Clock,
    *,
    stop_at_proxy: bool = False,
) -> bytes | None:
    """Follow *route* up to the origin's TLS handshake; return the certificate met last."""
    target = route.target
    opened: list[socket.socket] = []  # wrap_socket detaches the plain socket: close the last
    try:
        if route.action is Action.PROXY and route.proxy is not None:
            proxy = route.proxy
            sock = _step(clock, "proxy", "connect", lambda: _connect(proxy.host, proxy.port, clock))
            opened.append(sock)
            if proxy.is_tls:
                sock = _step(
                    clock,
                    "proxy",
                    "proxy_tls",
                    lambda: _tls_handshake(sock, proxy_context, proxy.host, clock),
                )
                opened.append(sock)
                if stop_at_proxy:
                    return _peer(sock)
            _step(clock, "proxy", "connect_response", lambda: _connect_tunnel(sock, route, clock))
        else:
            sock = _step(
                clock, "origin", "connect", lambda: _connect(target.host, target.port, clock)
            )
            opened.append(sock)
        tls = _step(
            clock, "origin", "tls", lambda: _tls_handshake(sock, origin_context, target.host, clock)
        )
        if isinstance(tls, socket.socket):
            opened.append(tls)
        return _peer(tls)
    finally:
        for item in reversed(opened):
            item.close()


def _step(clock: _Clock, hop: str, step: str, action: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return action()
    except _Failed:
        raise
    except ssl.SSLCertVerificationError as error:
        raise _Failed(
            "tls_failure", hop, step, f"certificate refused: {error.verify_message}"
        ) from None
    except ssl.SSLError as error:
        raise _Failed("tls_failure", hop, step, f"TLS error: {error.reason or error}") from None
    except TimeoutError:  # socket.timeout is TimeoutError
        raise _Failed("timeout", hop, step, f"timed out during {step.replace('_', ' ')}") from None
    except socket.gaierror as error:
        raise _Failed("connect_failed", hop, step, f"name not resolved: {error.strerror}") from None
    except OSError as error:
        what = error.strerror or error.__class__.__name__
        raise _Failed("connect_failed", hop, step, f"{what}") from None
    finally:
        clock.timings[step] = round((time.monotonic() - started) * 1000, 1)


def _connect(host: str, port: int, clock: _Clock) -> socket.socket:
    return socket.create_connection((host, port), timeout=clock.left())


def _connect_tunnel(sock: socket.socket | ssl.SSLObject | Any, route: Route, clock: _Clock) -> None:
    authority = route.target.authority
    request = (
        f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        f"User-Agent: carto-proxy-probe/{__version__}\r\n\r\n"
    ).encode("ascii")
    _send(sock, request, clock)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = _recv(sock, clock)
        if not chunk:
            raise _Failed(
                "protocol_error", "proxy", "connect_response", "the proxy closed the connection"
            )
        head += chunk
        if len(head) > _MAX_HEAD:
            raise _Failed("protocol_error", "proxy", "connect_response", "answer too long")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Failed(
            "protocol_error", "proxy", "connect_response", f"not HTTP: {status_line[:60]!r}"
        )
    status = int(parts[1])
    if status != 200:
        reason = parts[2] if len(parts) > 2 else ""
        raise _Failed(
            "refused", "proxy", "connect_response", f"the proxy answered {status} {reason}", status
        )
    if head.split(b"\r\n\r\n", 1)[1]:
        raise _Failed(
            "protocol_error", "proxy", "connect_response", "data before the tunnel was used"
        )


class _Tunnel:
    """TLS over any byte stream (a plain socket, or a TLS socket to an https:// proxy)."""

    def __init__(self, sock: Any, context: ssl.SSLContext, host: str) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)

    def handshake(self, clock: _Clock) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush(clock)
                data = _recv(self.sock, clock)
                if not data:
                    raise ConnectionResetError("closed during the TLS handshake") from None
                self.incoming.write(data)
            else:
                self._flush(clock)
                return

    def _flush(self, clock: _Clock) -> None:
        data = self.outgoing.read()
        if data:
            _send(self.sock, data, clock)


def _tls_handshake(sock: Any, context: ssl.SSLContext, host: str, clock: _Clock) -> Any:
    if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
        sock.settimeout(clock.left())
        return context.wrap_socket(sock, server_hostname=host)
    tunnel = _Tunnel(sock, context, host)  # TLS inside the TLS to the proxy
    tunnel.handshake(clock)
    return tunnel.tls


def _send(sock: Any, data: bytes, clock: _Clock) -> None:
    sock.settimeout(clock.left())
    sock.sendall(data)


def _recv(sock: Any, clock: _Clock) -> bytes:
    sock.settimeout(clock.left())
    data: bytes = sock.recv(65536)
    return data


def _peer(tls: Any) -> bytes | None:
    der: bytes | None = tls.getpeercert(binary_form=True)
    return der


def _refused_certificate(
    route: Route, proxy_context: ssl.SSLContext, hop: str | None, timeout: float
) -> CertificateInfo | None:
    """Walk the route again without verifying the failed hop, to name its certificate."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        if hop == "proxy":
            der = _walk(route, unverified, unverified, _Clock(timeout, {}), stop_at_proxy=True)
        else:
            der = _walk(route, proxy_context, unverified, _Clock(timeout, {}))
    except _Failed:
        return None
    return certificate_info(der) if der else None
