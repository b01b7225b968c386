"""The one host grammar: host names, IP literals, ``host:port``, ``[v6]:port`` and ports.

Proxy values, targets, NO_PROXY entries and the testing kit all read authorities with these
functions, so an edge case (brackets, a bare IPv6 address, port 0, a port of 5,000 digits) means
the same thing everywhere. Each caller adds only its own rule on top (a proxy's IPv6 address must
be bracketed; a NO_PROXY entry may also be a CIDR block).

Names: lowercase, one trailing dot dropped, IDNA (UTS 46) to ASCII. IP literals: their canonical
text form. ASCII names skip the IDNA codec, which costs tens of microseconds a call and would
dominate routing.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

__all__ = [
    "LABEL",
    "Authority",
    "IPAddress",
    "as_ip",
    "format_authority",
    "normalize_name",
    "parse_host",
    "parse_port",
    "split_authority",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Letters, digits, hyphens and underscores (internal names use them), 1-63 per label.
LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_NAME = re.compile(rf"(?:{LABEL}\.)*{LABEL}")
_BAD_BRACKETS = "the IPv6 address in brackets is not valid"


class Authority(NamedTuple):
    """``host[:port]`` split, before the host is checked.

    Attributes:
        host: the host as written, without brackets.
        port: the port, ``None`` when none was written.
        bracketed: the host was written in ``[...]``.
    """

    host: str
    port: int | None
    bracketed: bool


def split_authority(text: str) -> Authority:
    """Split ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address.

    Two colons or more without brackets mean a bare IPv6 address, which has no port.

    Raises:
        ValueError: unbalanced brackets, text after ``]`` that is not ``:port``, or a port
            that :func:`parse_port` refuses; the message says which.
    """
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{_BAD_BRACKETS} (unbalanced brackets)")
        if not after:
            return Authority(host, None, True)
        if not after.startswith(":"):
            raise ValueError(f"{_BAD_BRACKETS} (only :port may follow ']')")
        return Authority(host, parse_port(after[1:]), True)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return Authority(host, parse_port(port), False)
    return Authority(text, None, False)


def parse_port(text: str) -> int:
    """Return *text* as a port from 1 to 65535.

    Raises:
        ValueError: anything else (empty, signs, spaces, non-ASCII digits, 0, too large).
    """
    if text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536:
        return int(text)
    # The text is not quoted: in a URL whose password holds a '/', what stands where the port
    # should be is the first half of that password.
    raise ValueError("the port is not a number from 1 to 65535")


def parse_host(text: str, *, bracketed: bool = False) -> tuple[str, IPAddress | None]:
    """Return the normalised host and, for an IP literal, its address.

    A bracketed host must be an IPv6 address (``[10.0.0.1]`` and ``[zz]`` are not hosts). An
    IPv6 zone (``fe80::1%25eth0``) stays in the host, which is what is shown, but not in the
    address, which is what is compared: the zone only says which interface reaches it.

    Raises:
        ValueError: not a valid host name or IP address.
    """
    ip = as_ip(text)
    if bracketed and (ip is None or ip.version != 6):
        raise ValueError(_BAD_BRACKETS)
    if ip is not None:
        if ip.version == 6 and ip.scope_id:
            return str(ip), ipaddress.IPv6Address(int(ip))
        return str(ip), ip
    name = normalize_name(text)
    if name is None:
        raise ValueError("the host name is missing or not valid")
    return name, None


def normalize_name(name: str) -> str | None:
    """Return *name* as a lowercase ASCII host name, or ``None`` if it is not one.

    One trailing dot is dropped; non-ASCII names go through IDNA UTS 46.
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    if name.isascii():
        name = name.lower()
        return name if _ASCII_NAME.fullmatch(name) else None
    import idna  # only non-ASCII names need it; it costs 2 ms to import

    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ascii_name if _ASCII_NAME.fullmatch(ascii_name) else None


def as_ip(text: str) -> IPAddress | None:
    """Return *text* as an IP address (IPv6 without brackets), or ``None``."""
    if not text or not (text[0].isdigit() or ":" in text):
        return None  # a name: only IP literals start with a digit or hold a colon
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def format_authority(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
