"""Host name normalisation shared by proxy values, targets and NO_PROXY entries.

One rule everywhere: lowercase, one trailing dot dropped, IDNA (UTS 46) to ASCII, IP literals in
their canonical text form. ASCII names skip the IDNA codec, which costs tens of microseconds a
call and would dominate routing.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["LABEL", "IPAddress", "as_ip", "format_authority", "normalize_name"]

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
