"""The egress audit: catch the Python-level lookups and connections that go around the proxy.

:func:`audit` watches the ``socket.getaddrinfo``, ``socket.gethostbyname(_ex)`` and
``socket.connect`` audit events (PEP 578), which every client written on Python's sockets
raises: urllib, http.client, requests, httpx, aiohttp, boto3, google-auth. Behind a forward
proxy a client never looks up, nor connects to, a host its route sends through the proxy: it
connects to the proxy and asks it for the host. So each such lookup or connection is a
:class:`Violation`: some code went around the configuration.

How an event is judged (documented on the audit page):

- A host is judged by the route ``ProxyConfig.route`` gives it as HTTP on port 80, as HTTPS
  on 443, and on any other port only when both say PROXY (the audit cannot tell which a
  client speaks). PostgreSQL and Redshift ports are TCP, which is never proxied.
- The configured proxies are never violations: their host and port, or any host on a proxy's
  port unless it is 80 or 443 (a client may name the proxy differently: ``localhost`` for
  ``127.0.0.1``, a longer name).
- Lookups are judged by name; a lookup of an IP literal resolves nothing. A connection is
  judged by its address, unless a name was looked up for its port (the hooks see no lookup's
  answer, so the address is taken for that name's, which was judged already).
- The testing kit's servers are the test's machinery, not the program: their own threads'
  connections, and connections to their listening addresses, are not judged
  (:mod:`carto_proxy._unaudited`).

An audit hook cannot be removed, so the hook is installed on first use and, with no audit
active, returns after one test.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import ProxyConfig
from ._hosts import format_authority, parse_host, parse_port
from ._routing import Action, Route
from ._stacks import capture, where
from ._target import Protocol
from ._unaudited import is_exempt_address, is_unaudited, unaudited
from .exceptions import ConfigError, TargetError

__all__ = ["Audit", "Violation", "audit"]

LOG = logging.getLogger("carto_proxy.audit")

OnViolation = Literal["warn", "raise"] | Callable[["Violation"], object]
_HTTP, _HTTPS = Protocol.HTTP, Protocol.HTTPS
_PROTOCOLS = {80: (_HTTP,), 443: (_HTTPS,)}
_WEB_PORTS = frozenset(_PROTOCOLS)
_EITHER = (_HTTPS, _HTTP)
_TCP_PORTS = frozenset({5432, 5439})  # PostgreSQL, Redshift: CARTO's TCP warehouses
_STREAM = socket.SOCK_STREAM
_INET = (socket.AF_INET, socket.AF_INET6)
_UNSTREAMED = (socket.SOCK_DGRAM, socket.SOCK_RAW)
_SERVICES = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Violation:
    """A lookup or connection that went around the proxy.

    Attributes:
        host: the host as the client gave it (a name or an IP address), normalised.
        port: the port, ``None`` for a lookup without one (``gethostbyname``).
        route: the route that says PROXY for it.
        kind: ``"resolve"`` (a name lookup) or ``"connect"`` (a connection).
        stack_summary: where it came from, outermost frame first (source lines are read
            only when shown).
    """

    host: str
    port: int | None
    route: Route
    kind: Literal["resolve", "connect"]
    stack_summary: traceback.StackSummary = field(repr=False, compare=False)

    @property
    def where(self) -> str:
        """``file:line`` of the innermost application frame (else library frame) involved."""
        return where(self.stack_summary)

    @property
    def authority(self) -> str:
        """``host:port``, or the host alone when the port is unknown."""
        return self.host if self.port is None else format_authority(self.host, self.port)

    def __str__(self) -> str:
        verb = "looked up" if self.kind == "resolve" else "connected to"
        return (
            f"{self.authority} was {verb} directly from {self.where}, but its route is "
            f"{self.route.action.value.upper()} via {self.route.proxy} ({self.route.variable}): "
            "this connection goes around the proxy"
        )

    @property
    def fix(self) -> str:
        """What to do about it."""
        return (
            f"send it through the proxy (a carto_proxy adapter, or the client's own proxy "
            f"setting: {self.route.proxy}), or add {self.host} to NO_PROXY if it must go direct"
        )


class Audit:
    """An active egress audit; build one with :func:`audit`.

    A context manager: the block's end stops it, as :meth:`stop` does. Audits nest, and each
    judges by its own configuration.

    Attributes:
        config: the configuration it judges by.
    """

    def __init__(self, config: ProxyConfig, on_violation: OnViolation) -> None:
        if not (callable(on_violation) or on_violation in ("warn", "raise")):
            raise ConfigError(
                "on_violation",
                repr(on_violation)[:40],
                "must be 'warn', 'raise' or a callable",
                "give 'warn', 'raise' or a callable taking a carto_proxy.Violation",
            )
        self.config = config
        self._on_violation = on_violation
        self._lock = threading.Lock()
        self._violations: list[Violation] = []
        self._warned: set[tuple[str, int | None]] = set()
        proxies = {p for p in (config.http_proxy, config.https_proxy, config.grpc_proxy) if p}
        self._proxies = {(p.host, p.port) for p in proxies}
        self._proxy_hosts = {p.host for p in proxies}
        # A proxy's own port, unless it is the web's: whatever name or address a client gives
        # the proxy (localhost for 127.0.0.1, a longer name), that port says it is the proxy.
        self._proxy_ports = {p.port for p in proxies} - _WEB_PORTS
        # Ports a name was looked up for (and the proxies'): see the module docstring.
        self._looked_up: set[int] = set(self._proxy_ports)

    @property
    def violations(self) -> list[Violation]:
        """Every violation so far, in order (a copy)."""
        with self._lock:
            return list(self._violations)

    @property
    def active(self) -> bool:
        """Whether the audit is still watching."""
        return self in _audits

    def stop(self) -> None:
        """Stop watching (harmless when already stopped); :attr:`violations` stays."""
        global _audits
        with _lock:
            _audits = tuple(a for a in _audits if a is not self)

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<Audit {state}, {len(self._violations)} violation(s), {self.config!r}>"

    def _find(
        self, host: str, port: int | None, kind: Literal["resolve", "connect"]
    ) -> Violation | None:
        """The violation one lookup or connection is, or ``None`` (module docstring)."""
        try:
            name, ip = parse_host(host.strip().strip("[]").split("%")[0])
        except ValueError:
            return None  # not a host routing can read: nothing the configuration speaks for
        if kind == "resolve":
            if ip is not None:
                return None  # a literal resolves nothing; its connection is judged
            if port is not None:
                self._looked_up.add(port)
        elif ip is not None and port in self._looked_up:
            return None
        if (
            port in self._proxy_ports
            or (name, port) in self._proxies
            or (port is None and name in self._proxy_hosts)
        ):
            return None
        route = self._proxied_route(name, port)
        if route is None:
            return None
        return Violation(host=name, port=port, route=route, kind=kind, stack_summary=capture())

    def _proxied_route(self, host: str, port: int | None) -> Route | None:
        """The route saying PROXY that a direct lookup or connection goes around, or None."""
        if port in _TCP_PORTS:
            return None
        target = host if port is None else format_authority(host, port)
        found = None
        for protocol in _PROTOCOLS.get(port or 0, _EITHER):
            try:
                route = self.config.route(target, protocol=protocol)
            except TargetError:
                return None
            if route.action is not Action.PROXY:
                return None
            found = found or route
        return found

    def _act(self, violation: Violation) -> None:
        with self._lock:
            self._violations.append(violation)
            first = (violation.host, violation.port) not in self._warned
            self._warned.add((violation.host, violation.port))
        if self._on_violation == "raise":
            raise OSError(f"carto_proxy.audit refused this: {violation}. Fix: {violation.fix}")
        if self._on_violation == "warn":
            if first:
                LOG.warning(
                    "%s. Fix: %s",
                    violation,
                    violation.fix,
                    extra={"carto_proxy_violation": violation},
                )
        else:
            self._on_violation(violation)


def audit(config: ProxyConfig | None = None, *, on_violation: OnViolation = "warn") -> Audit:
    """Start watching this process for lookups and connections that go around the proxy.

    Every Python-level name lookup and connection (through :mod:`socket`) is judged by
    *config*: resolving, or connecting directly to, a host whose route says PROXY is a
    :class:`Violation`. The configured proxies, and hosts routed direct, are fine; so is
    everything carto_proxy's adapters send. C and Rust libraries that open their own sockets
    (gRPC's core, Snowflake 5.x, libcurl) are invisible to it.

    >>> from carto_proxy import ProxyConfig
    >>> config = ProxyConfig.from_env(environ={"https_proxy": "http://127.0.0.1:3128"})
    >>> import socket
    >>> with audit(config, on_violation="raise") as watching:
    ...     try:  # AI_NUMERICHOST: this example never asks a resolver, whatever happens
    ...         socket.getaddrinfo("api.example.com", 443, flags=socket.AI_NUMERICHOST)
    ...     except OSError as error:
    ...         print(str(error).split(":")[0])
    carto_proxy.audit refused this
    >>> [(v.host, v.port, v.kind) for v in watching.violations]
    [('api.example.com', 443, 'resolve')]

    Args:
        config: the configuration to judge by; ``None`` reads :meth:`ProxyConfig.from_env`.
        on_violation: ``"warn"`` logs a WARNING on ``carto_proxy.audit`` (once per
            host:port); ``"raise"`` makes the lookup or connection fail with an
            :class:`OSError` naming the host, the route and the fix, before anything is sent;
            a callable is called with each :class:`Violation` (what it raises fails the
            connection).

    Returns:
        The running :class:`Audit`: a context manager, with :meth:`Audit.stop` and
        :attr:`Audit.violations`.

    Raises:
        ConfigError: *on_violation* is none of these (a ``ValueError``).
    """
    global _audits, _installed
    handle = Audit(ProxyConfig.from_env() if config is None else config, on_violation)
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
        _audits = (*_audits, handle)
    return handle


# -- the hook ----------------------------------------------------------------------------------

_lock = threading.Lock()
_audits: tuple[Audit, ...] = ()
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _audits and event in _READERS:
        _dispatch(event, args)


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    """Judge one socket event under every active audit; raise the first refusal."""
    if is_unaudited():
        return  # the audit's own work (a log handler's socket, a callback), or unaudited()
    with unaudited():
        _judge(event, args)


def _judge(event: str, args: tuple[Any, ...]) -> None:
    seen = _READERS[event](args)
    if seen is None:
        return
    refusal: BaseException | None = None
    for running in _audits:
        try:
            violation = running._find(*seen)
        except Exception:  # a bug here must never break the program's connections
            LOG.debug("could not judge %s %r", event, seen, exc_info=True)
            continue
        if violation is not None:
            try:
                running._act(violation)
            except BaseException as error:  # a refusal, or what a callback raised
                refusal = refusal or error
    if refusal is not None:
        raise refusal


Seen = tuple[str, int | None, Literal["resolve", "connect"]] | None


def _lookup(args: tuple[Any, ...]) -> Seen:
    host, port, _family, kind, _protocol = args
    if host is None or kind in _UNSTREAMED:
        return None
    return _text(host), _port(port), "resolve"


def _lookup_name(args: tuple[Any, ...]) -> Seen:
    return _text(args[0]), None, "resolve"


def _connect(args: tuple[Any, ...]) -> Seen:
    sock, address = args
    if sock.family not in _INET or sock.type != _STREAM or not isinstance(address, tuple):
        return None
    host, port = _text(address[0]), _port(address[1])
    if is_exempt_address(host, port):
        return None  # one of the testing kit's local servers (carto_proxy._unaudited)
    return host, port, "connect"


def _text(host: object) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)


def _port(port: object) -> int | None:
    """A port as the socket module takes it (number, digits, service name), else ``None``."""
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, str):
        try:
            return parse_port(port)
        except ValueError:
            return _SERVICES.get(port.lower())
    return port if isinstance(port, int) and 0 < port < 65536 else None


_READERS: dict[str, Callable[[tuple[Any, ...]], Seen]] = {
    "socket.getaddrinfo": _lookup,
    "socket.gethostbyname": _lookup_name,
    "socket.gethostbyname_ex": _lookup_name,
    "socket.connect": _connect,
}
