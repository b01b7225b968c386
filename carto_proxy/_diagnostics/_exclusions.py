"""Findings about NO_PROXY and NO_GRPC_PROXY (``CP2xx``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from carto_proxy._no_proxy import NoProxy, parse_cidr
from carto_proxy._routing import Rule

from ._diagnostic import Diagnostic, finding

if TYPE_CHECKING:
    from carto_proxy._config import ProxyConfig

__all__ = ["exclusion_findings"]


def exclusion_findings(config: ProxyConfig) -> Iterator[Diagnostic]:
    """Ignored entries, CIDR blocks wider than written, ``*``, NO_GRPC_PROXY, Snowflake."""
    for variable, no_proxy, known, in_use in _lists(config):
        for ignored in no_proxy.ignored:
            if ignored.entry not in known:
                yield finding(
                    "CP201",
                    variable,
                    f"the entry {ignored.entry!r} is ignored: {ignored.reason}.",
                    f"rewrite or remove {ignored.entry!r}",
                    entry=ignored.entry,
                )
        for entry, block in no_proxy.cidr_blocks():
            if entry not in known:
                yield from _wide_block(variable, entry, block)
        if no_proxy.match_all is not None and config.has_proxy and in_use:
            yield finding(
                "CP203",
                variable,
                f"{variable} contains '*': no target uses the proxy.",
                "list the domains to exclude instead of '*', or unset the proxy",
            )
    if config.no_grpc_proxy is not None:
        yield finding(
            "CP204",
            "NO_GRPC_PROXY",
            "NO_GRPC_PROXY is set, so gRPC targets ignore NO_PROXY entirely.",
            "repeat in NO_GRPC_PROXY the NO_PROXY entries gRPC targets need",
        )
    snowflake = config.route("xy12345.snowflakecomputing.com")
    if snowflake.rule is Rule.WAREHOUSE_HTTPS_UNSUPPORTED:
        yield finding(
            "CP202",
            "NO_PROXY",
            "the HTTPS proxy cannot carry Snowflake traffic and .snowflakecomputing.com is not "
            "excluded: carto_proxy sends Snowflake direct, but CARTO's own services need the "
            "NO_PROXY entry to do the same.",
            "add .snowflakecomputing.com to NO_PROXY and no_proxy",
        )


def _lists(config: ProxyConfig) -> Iterator[tuple[str, NoProxy, frozenset[str], bool]]:
    """``(variable, list, entries already reported, in use)`` for each list to check.

    The list in use comes under the variable it was read from; the other case, when it holds
    something else (Go reads the UPPERCASE one), comes after it, minus what was reported.
    """
    sources = config.sources
    for name, in_use in (("NO_PROXY", config.no_proxy), ("NO_GRPC_PROXY", config.no_grpc_proxy)):
        setting = sources.get(name) if sources is not None else None
        variable = (setting.source if setting is not None else None) or name
        if in_use is not None:
            yield variable, in_use, frozenset(), True
        if setting is None or setting.value is None:
            continue
        lower_wins = variable == name.lower()
        other, raw = (name, setting.upper) if lower_wins else (name.lower(), setting.lower)
        if raw is not None and raw.strip() and raw.strip() != setting.value:
            reported = frozenset(in_use.entries if in_use is not None else ())
            yield other, NoProxy.parse(raw), reported, False


def _wide_block(
    variable: str, entry: str, block: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> Iterator[Diagnostic]:
    written = parse_cidr(entry)[1]
    if block.prefixlen == 0:
        meaning = f"every IPv{block.version} address: every IP-literal target goes direct"
        fix = "list the networks the services really use"
    elif int(written) != int(block.network_address):
        meaning = (
            f"the whole block {block} ({block.network_address} to {block.broadcast_address}): "
            "the bits after the prefix length are dropped"
        )
        fix = f"write {block} if the whole block is meant, or the address alone"
    else:
        return
    yield finding(
        "CP206", variable, f"the CIDR entry {entry!r} matches {meaning}.", fix, entry=entry
    )
