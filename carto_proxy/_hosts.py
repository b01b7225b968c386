"""Host name normalisation shared by proxy values, targets and NO_PROXY entries.

One rule everywhere: lowercase, one trailing dot dropped, IDNA (UTS 46) to ASCII, IP literals in
their canonical text form. ASCII names skip the IDNA codec, which costs tens of microseconds a
call and would dominate routing.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "LABEL",
    "IPAddress",
    "as_ip",
    "format_authority",
    "normalize_name",
    "parse_port",
    "split_authority",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Letters, digits, hyphens and underscores (internal names use them), 1-63 per label.
LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_NAME = re.compile(rf"(?:{LABEL}\.)*{LABEL}")


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
        return None  # fast path: names never start with a digit-only IP shape check
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def format_authority(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(text: str) -> int:
    """Return *text* as a TCP port, 1 to 65535: ASCII digits only, no sign, no spaces.

    Raises:
        ValueError: *text* is not such a port (the message quotes at most 20 characters).
    """
    # The length check first: int() of a long digit string is slow, and over 4,300 digits it
    # raises a ValueError of its own (CPython's integer string conversion limit).
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port {text[:20]!r}: give a number from 1 to 65535")
    return int(text)


def split_authority(text: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` into the host and the port.

    The host is returned as written, without brackets; nothing is normalised or resolved. An
    unbracketed host with more than one colon is a bare IPv6 address, with no port.

    Raises:
        ValueError: the brackets do not close, text follows them, the port is not a port
            (:func:`parse_port`) or there is no host.
    """
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid authority {text[:200]!r}: expected [address]:port")
        port = parse_port(rest[1:]) if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = parse_port(port_text)
    else:
        host, port = text, None
    if not host:
        raise ValueError(f"no host in {text[:200]!r}")
    return host, port
