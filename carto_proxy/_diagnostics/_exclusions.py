"""Findings about NO_PROXY and NO_GRPC_PROXY (``CP2xx``)."""

from __future__ import annotations

from collections.abc import Iterator

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Rule

from ._diagnostic import Diagnostic, finding

__all__ = ["exclusion_findings"]


def exclusion_findings(config: ProxyConfig) -> Iterator[Diagnostic]:
    """Ignored entries, ``*``, NO_GRPC_PROXY, and Snowflake under an HTTPS proxy."""
    for variable, no_proxy in (
        ("NO_PROXY", config.no_proxy),
        ("NO_GRPC_PROXY", config.no_grpc_proxy),
    ):
        if no_proxy is None:
            continue
        for ignored in no_proxy.ignored:
            yield finding(
                "CP201",
                variable,
                f"the entry {ignored.entry!r} is ignored: {ignored.reason}.",
                f"rewrite or remove {ignored.entry!r}",
            )
        if no_proxy.match_all is not None and config.has_proxy:
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
