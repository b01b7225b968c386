"""Portability of NO_PROXY entries (``CP50x``/``CP51x``): how each tool reads one entry."""

from __future__ import annotations

from collections.abc import Iterator

from carto_proxy._hosts import as_ip, split_authority
from carto_proxy._proxy_url import redact

from ._diagnostic import Diagnostic, finding
from ._tools import tool_names

__all__ = ["entry_findings"]

_DEFAULT_PORTS = (80, 443)


def entry_findings(
    variable: str, entries: tuple[str, ...], readers: tuple[str, ...], ignored: set[str]
) -> Iterator[Diagnostic]:
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
        for code, tools, message, fix in _entry(entry, alone=len(entries) == 1):
            concerned = tuple(t for t in tools if t in readers)
            if concerned:
                text = message.format(tools=tool_names(concerned), entry=shown)
                yield finding(code, variable, text, fix, entry=shown, tools=concerned)


_Rule = tuple[str, tuple[str, ...], str, str]


def _entry(entry: str, *, alone: bool) -> Iterator[_Rule]:
    """Yield ``(code, tools, message template, fix)`` for one trimmed entry."""
    if entry == "*":
        if alone:
            yield (
                "CP509",
                ("grpc",),
                "'*' alone means 'bypass the proxy for everything', except for {tools}, which "
                "does not understand it and keeps using the proxy.",
                "to send everything direct, unset the proxy variables instead",
            )
        else:
            yield (
                "CP509",
                ("curl", "urllib", "requests", "undici", "grpc"),
                "'*' inside a list bypasses the proxy for everything in carto_proxy, Go, httpx "
                "and proxy-from-env, but {tools} ignore it and keep using the proxy.",
                "to send everything direct, unset the proxy variables instead of listing '*'",
            )
        return
    if any(c.isspace() for c in entry):
        yield (
            "CP512",
            ("proxy-from-env", "undici", "curl"),
            "{entry!r} holds spaces: carto_proxy and most tools ignore it, but {tools} split it "
            "on the spaces and exempt each part.",
            "separate entries with commas",
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
    yield from _name(entry, host, port)


def _cidr(entry: str) -> Iterator[_Rule]:
    if ":" in entry:
        yield (
            "CP506",
            ("urllib", "requests", "proxy-from-env", "undici", "curl", "httpx"),
            "the IPv6 CIDR block {entry!r} is ignored by {tools} (curl 7; httpx 0.28 even "
            "raises for every URL while such an entry is listed).",
            "list the IPv6 addresses the services use, or accept that these tools proxy them",
        )
    else:
        yield (
            "CP505",
            ("urllib", "httpx", "proxy-from-env", "undici"),
            "the CIDR block {entry!r} is ignored by {tools}, which send those addresses to the "
            "proxy (httpx only exempts the network address itself).",
            "list the addresses the services use as well, or accept that these tools proxy them",
        )


def _address(address: str, version: int, port: int | None, *, bracketed: bool) -> Iterator[_Rule]:
    if version == 6 and bracketed:
        yield (
            "CP508",
            ("go", "requests", "curl", "grpc", "httpx"),
            "the bracketed IPv6 entry {entry!r} is ignored by {tools} (httpx 0.28 even raises "
            "for every URL while it is listed).",
            f"write the address without brackets: {address}",
        )
    elif version == 6:
        yield (
            "CP507",
            ("urllib", "proxy-from-env", "undici"),
            "the IPv6 entry {entry!r} is ignored by {tools}, which only understand IPv6 "
            "entries in brackets (and brackets break others).",
            "accept that these tools proxy it; no single spelling works everywhere",
        )
    if port is not None:
        tools = ("curl", "grpc", "requests")
        yield (
            "CP504",
            tools,
            "{entry!r} has a port: {tools} never match entries with a port (requests never "
            "matches an address with a port) and send the host to the proxy.",
            "drop the port if the host may bypass the proxy on every port",
        )


def _name(entry: str, host: str, port: int | None) -> Iterator[_Rule]:
    bare = host[2:] if host.startswith("*.") else host.lstrip(".")
    if host.startswith("*."):
        yield (
            "CP501",
            ("curl", "urllib", "requests", "httpx", "grpc"),
            "{entry!r} is ignored by {tools}: they do not understand a leading '*.' and send "
            "these hosts to the proxy.",
            f"write .{bare} (it covers every subdomain, for every tool)",
        )
    elif host.startswith("."):
        yield (
            "CP502",
            ("go", "httpx", "proxy-from-env"),
            "{entry!r} covers the subdomains, but {tools} do not apply it to " + bare + " itself.",
            f"also list {bare} if {bare} itself must go direct",
        )
    elif "." in host and not host.endswith(".") and port is None:
        yield (
            "CP503",
            ("proxy-from-env",),
            "{entry!r} covers "
            + host
            + " and its subdomains, but {tools} matches "
            + host
            + " only and proxies its subdomains.",
            f"also list .{host} if Node clients built on proxy-from-env must send subdomains "
            "direct",
        )
    if host.endswith("."):
        yield (
            "CP510",
            ("go", "urllib", "requests", "httpx", "proxy-from-env", "undici", "grpc"),
            "{entry!r} ends with a dot: only curl (and carto_proxy) drop it; {tools} never "
            "match it.",
            f"write {entry[:-1]}",
        )
    if not host.isascii():
        yield (
            "CP511",
            ("requests", "proxy-from-env", "undici", "curl", "httpx"),
            "{entry!r} is not ASCII: {tools} do not match it (httpx 0.28 even raises for every "
            "URL while it is listed).",
            "write the IDNA (xn--) form, and use that form in URLs too: urllib, httpx and gRPC "
            "do not match a punycode entry against a Unicode URL",
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
        yield (
            "CP504",
            tools,
            message + "; they send the host to the proxy.",
            "drop the port if the host may bypass the proxy on every port",
        )
