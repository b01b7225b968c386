"""Portability of the proxy variables (``CP52x``): how each proxy value is written.

Cases, blanks, a missing scheme or port and a missing HTTPS_PROXY are ``check()``'s findings
(``CP101``-``CP105``, ``CP111``), which name the tools concerned; the lint does not repeat them
(its codes for those are retired, see docs/cli.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from carto_proxy import _env

from ._diagnostic import Diagnostic, finding
from ._tools import ALL_TOOLS, tool_names

__all__ = ["variable_portability"]

_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")


def variable_portability(setting: _env.Setting) -> Iterator[Diagnostic]:
    """Spaces around a proxy value, and an ``https://`` proxy urllib cannot use."""
    name = setting.name
    if name not in _PROXY_NAMES or setting.value is None:
        return
    variable = setting.source or name
    raw = setting.lower if variable == name.lower() else setting.upper
    value = (raw or "").strip()
    readers = ("grpc",) if name == "GRPC_PROXY" else ALL_TOOLS
    if raw is not None and raw != value:
        tools = _only(("go", "urllib", "requests", "httpx", "curl", "grpc"), readers)
        yield finding(
            "CP523",
            variable,
            f"{variable} has spaces around its value: carto_proxy strips them, but "
            f"{tool_names(tools)} fail or silently ignore the proxy.",
            f"write {variable}={setting.shown(value)} without surrounding spaces",
            tools=tools,
        )
    scheme, sep, _ = value.partition("://")
    tools = _only(("urllib",), readers)
    if sep and scheme.lower() == "https" and tools:
        # What gRPC does with it is CP108's finding.
        yield finding(
            "CP525",
            variable,
            f"{variable} is an https:// proxy: Python urllib sends it a plain-text CONNECT.",
            "do not use urllib-based clients through this proxy",
            tools=tools,
        )


def _only(tools: tuple[str, ...], readers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in tools if t in readers)
