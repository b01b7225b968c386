"""Target: what a client connects to, parsed from a URL, ``host:port``, gRPC target or DSN."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from ._hosts import IPAddress, as_ip, normalize_name
from ._proxy_url import redact
from ._warehouses import Warehouse
from .exceptions import TargetError

__all__ = ["ParsedTarget", "Protocol", "Target", "parse_target"]


class Protocol(str, enum.Enum):
    """How a client talks to its target, which decides the proxy variable it uses."""

    HTTP = "http"
    HTTPS = "https"
    GRPC = "grpc"
    TCP = "tcp"

    def __str__(self) -> str:
        return self.value


_DEFAULT_PORTS = {Protocol.HTTP: 80, Protocol.HTTPS: 443, Protocol.GRPC: 443}

# scheme -> (protocol, default port, warehouse the scheme implies)
_SCHEMES: dict[str, tuple[Protocol, int, Warehouse | None]] = {
    "http": (Protocol.HTTP, 80, None),
    "ws": (Protocol.HTTP, 80, None),
    "https": (Protocol.HTTPS, 443, None),
    "wss": (Protocol.HTTPS, 443, None),
    "grpc": (Protocol.GRPC, 443, None),
    "grpcs": (Protocol.GRPC, 443, None),
    "dns": (Protocol.GRPC, 443, None),
    "ipv4": (Protocol.GRPC, 443, None),
    "ipv6": (Protocol.GRPC, 443, None),
    "postgres": (Protocol.TCP, 5432, Warehouse.POSTGRESQL),
    "postgresql": (Protocol.TCP, 5432, Warehouse.POSTGRESQL),
    "redshift": (Protocol.TCP, 5439, Warehouse.REDSHIFT),
}
# gRPC name-resolver prefixes written without '//' (dns:host:port, ipv4:1.2.3.4:443).
_GRPC_PREFIXES = ("dns:", "ipv4:", "ipv6:")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A normalised destination: protocol, host (IDNA ASCII, lowercase) and effective port."""

    protocol: Protocol
    host: str
    port: int

    @property
    def authority(self) -> str:
        """``host:port``, with IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol.value}://{self.authority}"


class ParsedTarget(NamedTuple):
    """A target with what its spelling implies beyond protocol, host and port."""

    target: Target
    ip: IPAddress | None  # the host as an address, for IP-literal targets
    warehouse: Warehouse | None  # implied by the scheme (postgres://, redshift://)


def parse_target(text: str, protocol: Protocol | None = None) -> ParsedTarget:
    """Parse a target string.

    Accepted: URLs (``http``, ``https``, ``ws``, ``wss``, ``grpc``, ``grpcs``, ``postgres``,
    ``postgresql``, ``redshift``), gRPC targets (``dns:///host:port``, ``dns:host:port``,
    ``ipv4:…``, ``ipv6:[…]:port``), and bare ``host``, ``host:port`` or ``[v6]:port``, which
    are HTTPS unless *protocol* says otherwise. An explicit *protocol* wins over the scheme.
    User information is dropped.

    Raises:
        TargetError: the text is not one of those forms.
    """
    stripped = text.strip()
    scheme, rest = _split_scheme(stripped)
    if scheme is None:
        return _bare(stripped, rest, protocol)
    known = _SCHEMES.get(scheme)
    if known is None:
        raise TargetError(redact(stripped, keep_user=False), f"the {scheme}: scheme is not routed")
    scheme_protocol, default_port, warehouse = known
    chosen = protocol or scheme_protocol
    host, port, ip = _host_port(rest, stripped)
    target = Target(protocol=chosen, host=host, port=port or default_port)
    return ParsedTarget(target, ip, warehouse)


def _split_scheme(text: str) -> tuple[str | None, str]:
    """Return (scheme, authority part); the scheme is None for a bare host[:port]."""
    head, sep, tail = text.partition("://")
    if sep and head.isascii() and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        scheme = head.lower()
        if scheme == "dns":  # dns://[dns-server]/host:port: the host is in the path
            tail = tail.partition("/")[2]
            return scheme, tail
        return scheme, _authority(tail)
    lowered = text[:5].lower()
    for prefix in _GRPC_PREFIXES:
        if lowered.startswith(prefix) and not text[len(prefix) :].isdigit():
            return prefix[:-1], text[len(prefix) :]
    return None, _authority(text)


def _authority(text: str) -> str:
    for stop in "/?#":
        text = text.partition(stop)[0]
    return text.rpartition("@")[2]  # user information never matters and is never shown


def _bare(text: str, authority: str, protocol: Protocol | None) -> ParsedTarget:
    chosen = protocol or Protocol.HTTPS
    host, port, ip = _host_port(authority, text)
    if port is None:
        port = _DEFAULT_PORTS.get(chosen)
        if port is None:
            raise TargetError(redact(text, keep_user=False), "a TCP target needs a port")
    return ParsedTarget(Target(protocol=chosen, host=host, port=port), ip, None)


def _host_port(authority: str, original: str) -> tuple[str, int | None, IPAddress | None]:
    """Split and normalise ``host[:port]``; IPv6 hosts come back without brackets."""
    port_text: str | None = None
    if authority.startswith("["):
        host_text, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise TargetError(redact(original, keep_user=False), "unbalanced IPv6 brackets")
        port_text = after[1:] if after else None
    elif authority.count(":") == 1:
        host_text, _, port_text = authority.partition(":")
    else:
        host_text = authority  # a name, or an unbracketed IPv6 address with no port
    ip = as_ip(host_text)
    host = str(ip) if ip is not None else normalize_name(host_text)
    if not host:
        raise TargetError(redact(original, keep_user=False), "no valid host name or address")
    if port_text is None:
        return host, None, ip
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise TargetError(redact(original, keep_user=False), f"the port {port_text!r} is invalid")
    port = int(port_text)
    if not 0 < port < 65536:
        raise TargetError(redact(original, keep_user=False), f"the port {port} is out of range")
    return host, port, ip
