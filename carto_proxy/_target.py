"""Target: what a client connects to, parsed from a URL, ``host:port``, gRPC target or DSN."""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from ._hosts import IPAddress, format_authority, parse_host, split_authority
from ._proxy_url import redact
from ._warehouses import Warehouse
from .exceptions import TargetError

__all__ = ["ParsedTarget", "Protocol", "Target", "parse_target", "target_text"]


class Protocol(str, enum.Enum):
    """How a client talks to its target, which decides the proxy variable it uses."""

    HTTP = "http"
    HTTPS = "https"
    GRPC = "grpc"
    TCP = "tcp"

    def __str__(self) -> str:
        return self.value


class Target(NamedTuple):
    """A normalised destination: protocol, host (IDNA ASCII, lowercase) and effective port.

    An immutable record (a named tuple, cheap to build on the routing hot path).
    """

    #: How the client talks to the target; it decides which proxy variable applies.
    protocol: Protocol
    #: Lowercase ASCII (IDNA) host name, one trailing dot dropped, or an IP address in its
    #: canonical form (IPv6 without brackets).
    host: str
    #: The effective port: the one written, else the protocol's default.
    port: int

    @property
    def authority(self) -> str:
        """``host:port``, with IPv6 hosts in brackets."""
        return format_authority(self.host, self.port)

    def __str__(self) -> str:
        return f"{self.protocol.value}://{self.authority}"


# The target, the host as an address for IP literals, and the warehouse its scheme implies.
ParsedTarget = tuple[Target, IPAddress | None, Warehouse | None]

_HTTP, _HTTPS, _GRPC, _TCP = Protocol.HTTP, Protocol.HTTPS, Protocol.GRPC, Protocol.TCP
_DEFAULT_PORTS = {_HTTP: 80, _HTTPS: 443, _GRPC: 443}
# scheme -> (protocol, default port, warehouse the scheme implies)
_SCHEMES: dict[str, tuple[Protocol, int, Warehouse | None]] = {
    "http": (_HTTP, 80, None),
    "ws": (_HTTP, 80, None),
    "https": (_HTTPS, 443, None),
    "wss": (_HTTPS, 443, None),
    "grpc": (_GRPC, 443, None),
    "grpcs": (_GRPC, 443, None),
    "dns": (_GRPC, 443, None),
    "ipv4": (_GRPC, 443, None),
    "ipv6": (_GRPC, 443, None),
    "postgres": (_TCP, 5432, Warehouse.POSTGRESQL),
    "postgresql": (_TCP, 5432, Warehouse.POSTGRESQL),
    "redshift": (_TCP, 5439, Warehouse.REDSHIFT),
}
_AUTHORITY_END = re.compile(r"[/?#]")
# The default port of each TCP warehouse, for a bare host given with warehouse=.
_TCP_PORTS = {warehouse: port for _, port, warehouse in _SCHEMES.values() if warehouse}
# gRPC name-resolver prefixes written without '//' (dns:host:port, ipv4:1.2.3.4:443).
_GRPC_PREFIXES = ("dns:", "ipv4:", "ipv6:")
_NEVER_PROXIED = ("unix:", "unix-abstract:", "vsock:")
# The common case in one match: a lowercase URL whose host is already a normal ASCII name.
# Routing decides in a few microseconds, so the general parser's chain of calls would
# dominate it; anything unusual falls through to that parser.
# No backslash anywhere in the authority, and no '@' after it when there is user information:
# see _authority().
_PLAIN_URL = re.compile(
    r"([a-z]+)://([^@/?#\[\]\\]*@)?([a-z0-9_.-]+)(?::([0-9]{1,5}))?(?:[/?#]|\Z)"
)


def parse_target(
    text: str, protocol: Protocol | None = None, warehouse: Warehouse | None = None
) -> ParsedTarget:
    """Parse a target string.

    Accepted: URLs (``http``, ``https``, ``ws``, ``wss``, ``grpc``, ``grpcs``, ``postgres``,
    ``postgresql``, ``redshift``), gRPC targets (``dns:///host:port``, ``dns:host:port``,
    ``ipv4:…``, ``ipv6:[…]:port``), and bare ``host``, ``host:port`` or ``[v6]:port``, which
    are HTTPS unless *protocol* says otherwise, or TCP (default port 5432 or 5439) for a TCP
    *warehouse*. An explicit *protocol* wins over the scheme. User information is dropped.

    Raises:
        TargetError: the text is not one of those forms.
    """
    plain = _PLAIN_URL.match(text)
    if plain is not None:
        scheme, user, host, port_text = plain.groups()
        known = _SCHEMES.get(scheme)
        # User information that goes on past the first '@' is the general parser's to refuse.
        plain_user = user is None or text.find("@", plain.end()) < 0
        if known is not None and scheme != "dns" and plain_user and _is_plain_name(host):
            port = known[1] if port_text is None else int(port_text)
            if 0 < port < 65536:
                return Target(protocol or known[0], host, port), None, known[2]
    return _parse_general(text.strip(), protocol, warehouse)


def _is_plain_name(host: str) -> bool:
    """True for a host the fast path may take as is: a valid name, not an IP literal."""
    return not (
        host[-1].isdigit()  # maybe an IPv4 literal: the general parser decides
        or host[0] in ".-"
        or host[-1] in ".-"  # a trailing dot is dropped by the general parser
        or ".." in host
        or ".-" in host
        or "-." in host
        or len(host) > 253
        or (len(host) > 63 and any(len(label) > 63 for label in host.split(".")))
    )


def _parse_general(
    text: str, protocol: Protocol | None, warehouse: Warehouse | None = None
) -> ParsedTarget:
    lowered = text[:14].lower()
    if lowered.startswith(_NEVER_PROXIED):
        raise _error(text, "Unix-socket and vsock targets never use a proxy")
    try:
        scheme, rest = _split_scheme(text)
    except _Ambiguous as ambiguous:
        raise _error(text, str(ambiguous)) from None
    if scheme is None:
        tcp_port = _TCP_PORTS.get(warehouse) if warehouse is not None else None
        chosen = protocol or (_TCP if tcp_port else _HTTPS)
        host, port, ip = _host_port(rest, text)
        if port is None:
            port = _DEFAULT_PORTS.get(chosen) or (tcp_port if chosen is _TCP else None)
            if port is None:
                raise _error(text, "a TCP target needs a port")
        return Target(chosen, host, port), ip, None
    known = _SCHEMES.get(scheme)
    if known is None:
        raise _error(text, f"the {scheme}: scheme is not routed")
    host, port, ip = _host_port(rest, text)
    return Target(protocol or known[0], host, port or known[1]), ip, known[2]


def _split_scheme(text: str) -> tuple[str | None, str]:
    """Return (scheme, authority part); the scheme is None for a bare host[:port]."""
    head, sep, tail = text.partition("://")
    if sep and head.isascii() and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        scheme = head.lower()
        if scheme == "dns":  # dns://[dns-server]/host:port: the host is in the path
            return scheme, tail.partition("/")[2]
        return scheme, _authority(tail)
    lowered = text[:5].lower()
    for prefix in _GRPC_PREFIXES:
        if lowered.startswith(prefix) and not text[len(prefix) :].isdigit():
            return prefix[:-1], text[len(prefix) :]
    return None, _authority(text)


def _authority(text: str) -> str:
    """The host[:port] of an authority: up to the first ``/?#``, after the last ``@``.

    Raises:
        _Ambiguous: the authority holds a backslash, where clients part ways:
            ``https://127.0.0.1:\\@evil.test/`` reaches 127.0.0.1 with urllib3 and requests
            (and browsers: WHATWG ends a special URL's authority at ``\\``) but evil.test with
            httpx and urllib. Answering for either host would be wrong for the other clients.
            Or user information is followed by another ``@`` after the authority ended
            (``https://u:p@ss#word@host/``): a password holding ``@`` and ``/ ? #``, cut
            short, whose piece after the ``@`` would be taken as the host and shown.
    """
    authority = _AUTHORITY_END.split(text, maxsplit=1)[0]
    if "\\" in authority:
        raise _Ambiguous(
            "a backslash in the host part is read differently by clients (urllib3 and requests "
            "end the host there, httpx and urllib do not); percent-encode it as %5C"
        )
    if "@" in authority and "@" in text[len(authority) :]:
        raise _Ambiguous(
            "the user information seems to go on after a '/', '?' or '#'; percent-encode "
            "those characters in a password"
        )
    return authority.rpartition("@")[2]  # user information never matters and is never shown


class _Ambiguous(ValueError):
    """A target that clients would connect to differently."""


def _host_port(authority: str, original: str) -> tuple[str, int | None, IPAddress | None]:
    """Split and normalise ``host[:port]``; IPv6 hosts come back without brackets."""
    try:
        host_text, port, bracketed = split_authority(authority)
        host, ip = parse_host(host_text, bracketed=bracketed)
    except ValueError as error:
        problem = str(error)
        if _user_info_cut_short(original):
            problem += "; a '/', '?' or '#' in a password ends the host part: percent-encode it"
        raise _error(original, problem) from None
    return host, port, ip


def _user_info_cut_short(text: str) -> bool:
    """True when an '@' comes only after the authority ended (``u:pa/ss@host``)."""
    rest = text.partition("://")[2] or text
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    return "@" in rest and "@" not in authority


def _error(text: str, problem: str) -> TargetError:
    return TargetError(redact(text, keep_user=False), problem)


def target_text(target: object) -> str:
    """The text of a URL object: ``httpx.URL``, ``yarl.URL``, ``urllib.parse`` results.

    Raises:
        TargetError: *target* is not a URL object (``None``, bytes, a number...).
    """
    geturl = getattr(target, "geturl", None)  # urllib.parse results: str() is their repr
    if callable(geturl):
        return str(geturl())
    if hasattr(target, "scheme") and hasattr(target, "host"):  # httpx.URL, yarl.URL
        return str(target)
    raise TargetError(
        f"<{type(target).__name__}>", "a target is a URL or host[:port] string, or a URL object"
    )
