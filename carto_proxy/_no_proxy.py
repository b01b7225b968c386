"""NO_PROXY grammar, compiled once into an index so matching never scans every entry.

The grammar (DESIGN §3.4): entries split on ``,`` and trimmed; ``*`` bypasses everything;
``example.com``, ``.example.com`` and ``*.example.com`` all mean the domain and every
subdomain, on label boundaries; ``host:port`` matches that effective port only; IPv4/IPv6
addresses (bare or bracketed, optionally with a port) and CIDR blocks match IP-literal targets
only; names never match IP literals; an IPv6 zone (``%eth0``) is not compared. Anything else is
kept in :attr:`NoProxy.ignored` with the reason, never raised. User information written in an
entry (``alice:pw@db.corp``) is masked as soon as the list is read, so no output shows it.

Cost: a name is looked up once per label of the target (``a.b.example.com`` → three dict
probes), an address once per distinct CIDR prefix length, whatever the number of entries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ._hosts import IPAddress, as_ip, normalize_name, parse_host, split_authority
from ._proxy_url import redact

__all__ = ["NoProxy", "parse_cidr"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NETWORK_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_QUICK_LIMIT = 32  # names; past this, endswith() over a tuple costs more than the walk


class _Rule(NamedTuple):
    port: int | None  # None: any port
    entry: str  # as written, trimmed


class IgnoredEntry(NamedTuple):
    """A NO_PROXY entry carto_proxy cannot use, and why."""

    entry: str
    reason: str


class NoProxy:
    """A compiled NO_PROXY list.

    Build it with :meth:`parse`; ask it with :meth:`match`. Two lists are equal when their
    entries (trimmed, in order) are equal.

    Attributes:
        entries: the entries as written, trimmed, empty ones dropped, user information masked.
        ignored: the entries carto_proxy cannot use, each with the reason.
        match_all: the ``*`` entry, when there is one: every target bypasses the proxy.
    """

    __slots__ = (
        "_ips",
        "_names",
        "_networks",
        "_quick",
        "_suffixes",
        "entries",
        "ignored",
        "match_all",
    )

    def __init__(
        self,
        entries: tuple[str, ...] = (),
        ignored: tuple[IgnoredEntry, ...] = (),
        match_all: str | None = None,
        names: dict[str, tuple[_Rule, ...]] | None = None,
        ips: dict[IPAddress, tuple[_Rule, ...]] | None = None,
        networks: tuple[tuple[int, int, dict[int, str]], ...] = (),
    ) -> None:
        self.entries = entries
        self.ignored = ignored
        self.match_all = match_all
        self._names = names or {}
        # Every label suffix of every name entry ("io", "mega.io"): matching walks a host's
        # suffixes from the right and stops at the first one no entry ends with.
        self._suffixes = frozenset(_label_suffixes(self._names))
        # A short list is ruled out by one C-level endswith() before any walk.
        self._quick = (
            tuple(name for n in self._names for name in (n, f".{n}"))
            if len(self._names) <= _QUICK_LIMIT
            else None
        )
        self._ips = ips or {}
        # One (version, netmask, {network address: entry}) per distinct prefix length.
        self._networks = networks

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> NoProxy:
        """Compile a NO_PROXY value (a comma-separated string or a list of entries)."""
        if value is None:
            return _EMPTY
        parts = (
            value.split(",")
            if isinstance(value, str)
            else (piece for item in value for piece in item.split(","))
        )
        entries = tuple(_masked(p.strip()) for p in parts if p.strip())
        return _compile(entries) if entries else _EMPTY

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoProxy) and self.entries == other.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __str__(self) -> str:
        return ",".join(self.entries)

    def __repr__(self) -> str:
        return f"NoProxy({str(self)!r})"

    def any_port_entries(self) -> tuple[str, ...]:
        """The usable entries that match every port, normalised, without repeats.

        Names without a leading ``.`` or ``*.`` (each still means the domain and its
        subdomains), IP addresses (IPv6 without brackets), CIDR blocks and ``*``: the form
        clients that take a NO_PROXY list but match no ports (the Snowflake drivers) read.
        Entries with a port, and entries carto_proxy ignores, are left out.
        """
        kept: dict[str, None] = {}
        for entry in self.entries:
            parsed = "*" if entry == "*" else _parse_entry(entry)
            if isinstance(parsed, tuple):
                if parsed[1] is None:
                    kept[str(parsed[0])] = None
            elif parsed == "*" or not isinstance(parsed, str):
                kept[str(parsed)] = None
        return tuple(kept)

    def cidr_blocks(self) -> tuple[tuple[str, _Network], ...]:
        """Each CIDR entry as written, with the block it matches (host bits cleared)."""
        return tuple(
            (entry, parsed)
            for entry in self.entries
            if "/" in entry and isinstance(parsed := _parse_entry(entry), _NETWORK_TYPES)
        )

    def match(self, host: str, port: int, ip: IPAddress | None = None) -> str | None:
        """Return the entry that exempts ``host:port`` from the proxy, or ``None``.

        Args:
            host: the target's normalised host (lowercase ASCII, or an IP's text form).
            port: the target's effective port.
            ip: the target host as an address when it is an IP literal.
        """
        if self.match_all is not None:
            return self.match_all
        if ip is not None:
            return self._match_ip(ip, port)
        quick = self._quick
        if quick is not None and not host.endswith(quick):
            return None  # no name entry is the host or one of its parent domains
        suffixes = self._suffixes
        found: str | None = None
        end = len(host)
        while True:
            dot = host.rfind(".", 0, end)
            suffix = host[dot + 1 :]
            if suffix not in suffixes:
                return found
            for rule in self._names.get(suffix, ()):
                if rule.port is None or rule.port == port:
                    found = rule.entry  # keep walking: the most specific entry wins
                    break
            if dot < 0:
                return found
            end = dot

    def _match_ip(self, ip: IPAddress, port: int) -> str | None:
        for rule in self._ips.get(ip, ()):
            if rule.port is None or rule.port == port:
                return rule.entry
        address = int(ip)
        for version, netmask, networks in self._networks:
            if version == ip.version:
                entry = networks.get(address & netmask)
                if entry is not None:
                    return entry
        return None


def _compile(entries: tuple[str, ...]) -> NoProxy:
    names: dict[str, list[_Rule]] = {}
    ips: dict[IPAddress, list[_Rule]] = {}
    networks: dict[tuple[int, int], dict[int, str]] = {}
    ignored: list[IgnoredEntry] = []
    match_all: str | None = None
    for entry in entries:
        if entry == "*":
            match_all = match_all or entry
            continue
        parsed = _parse_entry(entry)
        if isinstance(parsed, str):
            ignored.append(IgnoredEntry(entry, parsed))
        elif isinstance(parsed, _NETWORK_TYPES):
            key = (parsed.version, int(parsed.netmask))
            networks.setdefault(key, {}).setdefault(int(parsed.network_address), entry)
        elif isinstance(parsed[0], str):
            names.setdefault(parsed[0], []).append(_Rule(parsed[1], entry))
        else:
            ips.setdefault(parsed[0], []).append(_Rule(parsed[1], entry))
    return NoProxy(
        entries,
        tuple(ignored),
        match_all,
        {name: tuple(rules) for name, rules in names.items()},
        {ip: tuple(rules) for ip, rules in ips.items()},
        tuple((version, mask, nets) for (version, mask), nets in networks.items()),
    )


_Parsed = tuple[str | IPAddress, int | None] | _Network | str  # str alone: why it is ignored


def _label_suffixes(names: Iterable[str]) -> Iterator[str]:
    for name in names:
        dot = len(name)
        while dot > 0:
            dot = name.rfind(".", 0, dot)
            yield name[dot + 1 :]


def _masked(entry: str) -> str:
    return redact(entry, keep_user=False) if "@" in entry else entry


def _parse_entry(entry: str) -> _Parsed:
    """Classify one trimmed entry; a bare ``str`` result is the reason it is ignored."""
    if "@" in entry:
        return "user information (user:password@) is not part of NO_PROXY; write the host only"
    if "://" in entry or ("/" in entry and not _looks_like_cidr(entry)):
        return "schemes and paths are not part of NO_PROXY; write the host name only"
    if "/" in entry:
        try:
            return parse_cidr(entry)[0]
        except ValueError:
            return "not a valid CIDR block (write e.g. 10.0.0.0/8 or 2001:db8::/32)"
    try:
        host, port, bracketed = split_authority(entry)
        if not bracketed and as_ip(host) is None:
            return _name_entry(host, port)
        _, address = parse_host(host, bracketed=bracketed)
    except ValueError as error:
        return str(error)
    assert address is not None  # brackets and IP literals parse to an address
    return address, port


def _name_entry(host: str, port: int | None) -> _Parsed:
    if host.startswith("*."):
        host = host[2:]
    elif host.startswith("."):
        host = host[1:]
    if "*" in host:
        return "wildcards are only understood as a leading '*.' or as the whole entry '*'"
    name = normalize_name(host)
    if name is None:
        return "not a valid host name, IP address or CIDR block"
    return name, port


def parse_cidr(entry: str) -> tuple[_Network, IPAddress]:
    """Read a CIDR entry (``10.0.0.0/8``, ``2001:db8::/32``, ``[2001:db8::]/32``).

    Returns the block (host bits cleared, as matching uses it) and the address as written.

    Raises:
        ValueError: not a CIDR block.
    """
    address, slash, prefix = entry.strip("[]").replace("]/", "/").partition("/")
    if not slash:
        raise ValueError(f"{entry!r} has no prefix length")
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False), ipaddress.ip_address(address)


def _looks_like_cidr(entry: str) -> bool:
    address, _, prefix = entry.partition("/")
    return prefix.isascii() and prefix.isdigit() and (address[:1].isdigit() or ":" in address)


_EMPTY = NoProxy()
