"""Portability of NO_PROXY entries (``CP50x``/``CP51x``): how each tool reads one entry.

This is the portability table: :func:`entry_rules` says, for one entry, which tools read it
differently from carto_proxy and, where one exists, the spelling they all read the way
carto_proxy reads the original (:attr:`EntryRule.rewrite`). The lint reports the rules
(:func:`entry_findings`); ``carto-proxy env --portable`` applies their rewrites
(:mod:`._portable`). The facts are the measurements in ``no-proxy-dialects.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from typing import NamedTuple

from carto_proxy._hosts import as_ip, normalize_name, split_authority
from carto_proxy._no_proxy import parse_cidr
from carto_proxy._proxy_url import redact

from ._diagnostic import Diagnostic, finding
from ._tools import tool_names

__all__ = ["EntryRule", "entry_findings", "entry_rules"]

_DEFAULT_PORTS = (80, 443)
_MAX_EXPANDED = 16
"""The largest CIDR block written out address by address (``/28``, ``/124``)."""


class EntryRule(NamedTuple):
    """One row of the table: the tools that read a NO_PROXY entry unlike carto_proxy.

    Attributes:
        code: the lint code (``CP5xx``).
        tools: ids of the tools that read the entry differently.
        message: what they do, a template with ``{tools}`` and ``{entry}``.
        fix: what to write instead, for people.
        rewrite: the entries that carto_proxy reads exactly as the original and that these
            tools read that way too (an entry may need several rules' rewrites in turn);
            ``()`` to drop it; ``None`` when no spelling works. ``*`` among them stands for
            the whole list (``*`` already matches every target).
    """

    code: str
    tools: tuple[str, ...]
    message: str
    fix: str
    rewrite: tuple[str, ...] | None = None


def entry_findings(
    variable: str, entries: tuple[str, ...], readers: tuple[str, ...], ignored: set[str]
) -> Iterator[Diagnostic]:
    """The findings for a NO_PROXY list: each rule that concerns one of *readers*.

    Entries carto_proxy ignores itself (*ignored*) are ``check()``'s (``CP201``), except
    those holding spaces, which some tools split into entries they do use.
    """
    listed = frozenset(entry.lower() for entry in entries)
    seen: set[str] = set()
    for entry in entries:
        key = entry.lower()
        if key in seen:
            continue
        seen.add(key)
        spaced = any(c.isspace() for c in entry)
        if entry in ignored and not spaced:
            continue  # carto_proxy ignores it too: check() reports it (CP201)
        shown = redact(entry, keep_user=False)
        for rule in entry_rules(entry, listed):
            concerned = tuple(t for t in rule.tools if t in readers)
            if concerned:
                text = rule.message.format(tools=tool_names(concerned), entry=shown)
                yield finding(rule.code, variable, text, rule.fix, entry=shown, tools=concerned)


def entry_rules(entry: str, listed: Set[str]) -> Iterator[EntryRule]:
    """Yield the rules for one trimmed *entry* of a list whose entries, lowercased, are *listed*.

    The list matters: ``.example.com`` beside ``example.com`` (and the reverse) is read alike
    by every tool, and ``*`` means one thing alone and another inside a list.
    """
    if entry == "*":
        yield _star(alone=listed == {"*"})
        return
    if any(c.isspace() for c in entry):
        yield EntryRule(
            "CP512",
            ("proxy-from-env", "undici", "curl"),
            "{entry!r} holds spaces: carto_proxy and most tools ignore it, but {tools} split it "
            "on the spaces and exempt each part.",
            "separate entries with commas",
            rewrite=(),  # carto_proxy ignores it: without it, everyone agrees
        )
        return
    if "/" in entry:
        yield from _cidr(entry)
        return
    try:
        host, port, bracketed = split_authority(entry)
    except ValueError:
        return  # carto_proxy ignores it too: check() reports it (CP201)
    ip = as_ip(host)
    if ip is not None:
        yield from _address(ip.compressed, ip.version, port, bracketed=bracketed)
        return
    yield from _name(entry, host, port, listed)


def _star(*, alone: bool) -> EntryRule:
    if alone:
        return EntryRule(
            "CP509",
            ("grpc",),
            "'*' alone means 'bypass the proxy for everything', except for {tools}, which "
            "does not understand it and keeps using the proxy.",
            "to send everything direct, unset the proxy variables instead",
        )
    return EntryRule(
        "CP509",
        ("curl", "urllib", "requests", "undici", "grpc"),
        "'*' inside a list bypasses the proxy for everything in carto_proxy, Go, httpx "
        "and proxy-from-env, but {tools} ignore it and keep using the proxy.",
        "to send everything direct, unset the proxy variables instead of listing '*'",
        rewrite=("*",),  # alone, every tool but gRPC reads it as carto_proxy does
    )


def _cidr(entry: str) -> Iterator[EntryRule]:
    try:
        block, _ = parse_cidr(entry)  # read as routing reads it, host bits cleared
    except ValueError:
        return  # carto_proxy ignores it too: check() reports it (CP201)
    # A small block is its addresses, which every tool that reads an address entry matches.
    addresses = tuple(str(a) for a in block) if block.num_addresses <= _MAX_EXPANDED else None
    if block.version == 6:
        yield EntryRule(
            "CP506",
            ("urllib", "requests", "proxy-from-env", "undici", "curl", "httpx"),
            "the IPv6 CIDR block {entry!r} is ignored by {tools} (curl 7; httpx 0.28 even "
            "raises for every URL while such an entry is listed).",
            "list the IPv6 addresses the services use, or accept that these tools proxy them",
            rewrite=addresses,
        )
    else:
        yield EntryRule(
            "CP505",
            ("urllib", "httpx", "proxy-from-env", "undici"),
            "the CIDR block {entry!r} is ignored by {tools}, which send those addresses to the "
            "proxy (httpx only exempts the network address itself).",
            "list the addresses the services use as well, or accept that these tools proxy them",
            rewrite=addresses,
        )


def _address(
    address: str, version: int, port: int | None, *, bracketed: bool
) -> Iterator[EntryRule]:
    if version == 6 and bracketed:
        yield EntryRule(
            "CP508",
            ("go", "requests", "curl", "grpc", "httpx"),
            "the bracketed IPv6 entry {entry!r} is ignored by {tools} (httpx 0.28 even raises "
            "for every URL while it is listed).",
            f"write the address without brackets: {address}",
            # Without brackets a port cannot be written: an entry with one stays as it is.
            rewrite=(address,) if port is None else None,
        )
    elif version == 6:
        yield EntryRule(
            "CP507",
            ("urllib", "proxy-from-env", "undici"),
            "the IPv6 entry {entry!r} is ignored by {tools}, which only understand IPv6 "
            "entries in brackets (and brackets break others).",
            "accept that these tools proxy it; no single spelling works everywhere",
        )
    if port is not None:
        yield EntryRule(
            "CP504",
            ("curl", "grpc", "requests"),
            "{entry!r} has a port: {tools} never match entries with a port (requests never "
            "matches an address with a port) and send the host to the proxy.",
            "drop the port if the host may bypass the proxy on every port",
        )


def _name(entry: str, host: str, port: int | None, listed: Set[str]) -> Iterator[EntryRule]:
    suffix = "" if port is None else f":{port}"
    bare = host[2:] if host.startswith("*.") else host.lstrip(".")
    # The name and its subdomains, for every tool: "example.com" (apex and subdomains, except
    # for proxy-from-env) beside ".example.com" (the subdomains, for everyone).
    both = (f"{bare}{suffix}", f".{bare}{suffix}")
    if host.startswith("*."):
        yield EntryRule(
            "CP501",
            ("curl", "urllib", "requests", "httpx", "grpc"),
            "{entry!r} is ignored by {tools}: they do not understand a leading '*.' and send "
            "these hosts to the proxy.",
            f"write .{bare} (it covers every subdomain, for every tool)",
            rewrite=both,
        )
    elif host.startswith(".") and both[0].lower() not in listed:
        yield EntryRule(
            "CP502",
            ("go", "httpx", "proxy-from-env"),
            "{entry!r} covers the subdomains, but {tools} do not apply it to " + bare + " itself.",
            f"also list {bare} if {bare} itself must go direct",
            rewrite=both,
        )
    elif (
        "." in host
        and not host.startswith(".")
        and not host.endswith(".")
        and port is None
        and both[1].lower() not in listed
    ):
        yield EntryRule(
            "CP503",
            ("proxy-from-env",),
            "{entry!r} covers "
            + host
            + " and its subdomains, but {tools} matches "
            + host
            + " only and proxies its subdomains.",
            f"also list .{host} if Node clients built on proxy-from-env must send subdomains "
            "direct",
            rewrite=both,
        )
    if host.endswith("."):
        yield EntryRule(
            "CP510",
            ("go", "urllib", "requests", "httpx", "proxy-from-env", "undici", "grpc"),
            "{entry!r} ends with a dot: only curl (and carto_proxy) drop it; {tools} never "
            "match it.",
            f"write {entry[:-1] if port is None else host[:-1] + suffix}",
            rewrite=(host[:-1] + suffix,),
        )
    if not host.isascii():
        ascii_name = normalize_name(host.lstrip("*."))
        prefix = host[: len(host) - len(host.lstrip("*."))]
        yield EntryRule(
            "CP511",
            ("requests", "proxy-from-env", "undici", "curl", "httpx"),
            "{entry!r} is not ASCII: {tools} do not match it (httpx 0.28 even raises for every "
            "URL while it is listed).",
            "write the IDNA (xn--) form, and use that form in URLs too: urllib, httpx and gRPC "
            "do not match a punycode entry against a Unicode URL",
            rewrite=None if ascii_name is None else (f"{prefix}{ascii_name}{suffix}",),
        )
    if port is not None:
        tools: tuple[str, ...] = ("curl", "grpc")
        message = "{entry!r} has a port: {tools} never apply entries with a port"
        if port in _DEFAULT_PORTS:
            tools += ("urllib", "requests", "httpx")
            message = (
                "{entry!r} has a port: curl and gRPC never apply entries with a port, urllib "
                f"and requests apply :{port} only to URLs that spell the port out, and httpx "
                "never does"
            )
        yield EntryRule(
            "CP504",
            tools,
            message + "; they send the host to the proxy.",
            "drop the port if the host may bypass the proxy on every port",
        )
