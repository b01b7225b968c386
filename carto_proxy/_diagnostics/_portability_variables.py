"""Portability of the proxy variables (``CP52x``): cases, blanks and how each value is written."""

from __future__ import annotations

from collections.abc import Iterator

from carto_proxy import _env
from carto_proxy._proxy_url import redact

from ._diagnostic import Diagnostic, finding
from ._tools import ALL_TOOLS, tool_names

__all__ = ["variable_findings"]

_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_GRPC_ONLY = ("GRPC_PROXY", "NO_GRPC_PROXY")  # variables nothing but gRPC reads


def variable_findings(setting: _env.Setting, sources: _env.Sources) -> Iterator[Diagnostic]:
    name = setting.name
    lower, upper = setting.lower, setting.upper
    tools: tuple[str, ...]
    lower_set = lower is not None and bool(lower.strip())
    upper_set = upper is not None and bool(upper.strip())
    if upper_set and not lower_set and not setting.cgi_ignored:
        if name in _GRPC_ONLY:
            yield _finding(
                "CP520",
                name,
                ("grpc",),
                f"{name} is set in uppercase only, and the only tool that reads it, gRPC, "
                f"reads the lowercase {name.lower()}: only carto_proxy uses this value.",
                f"set {name.lower()} to the same value",
            )
        else:
            tools = ("curl", "grpc") if name == "HTTP_PROXY" else ("grpc",)
            what = (
                "curl never reads the uppercase HTTP_PROXY (httpoxy) and gRPC reads only "
                "lowercase names"
                if name == "HTTP_PROXY"
                else "gRPC reads only lowercase names"
            )
            yield _finding(
                "CP520",
                name,
                tools,
                f"{name} is set in uppercase only: {what}, so it is invisible to "
                f"{tool_names(tools)}.",
                f"set {name.lower()} to the same value",
            )
    if lower_set and upper_set and (lower or "").strip() != (upper or "").strip():
        yield _finding(
            "CP521",
            name,
            ("go",),
            f"{name.lower()} and {name} differ: Go uses {name}, every other tool (and "
            f"carto_proxy) uses {name.lower()}.",
            f"give {name} and {name.lower()} the same value",
        )
    if lower is not None and not lower.strip() and upper_set:
        if name.startswith("NO_"):
            tools = ("urllib", "httpx", "undici", "grpc")
            effect = "exclude nothing"
        else:
            tools = ("urllib", "requests", "httpx", "undici", "grpc")
            effect = "use no proxy"
        if name in _GRPC_ONLY:
            tools = ("grpc",)
        yield _finding(
            "CP522",
            name.lower(),
            tools,
            f"{name.lower()} is set but blank: carto_proxy falls back to {name}, but "
            f"{tool_names(tools)} let the blank value win and {effect}.",
            f"unset {name.lower()}, or give it the value of {name}",
        )
    if name in _PROXY_NAMES and setting.value is not None:
        yield from _proxy_value(setting, sources)


def _proxy_value(setting: _env.Setting, sources: _env.Sources) -> Iterator[Diagnostic]:
    name = setting.name
    variable = setting.source or name
    raw = setting.lower if variable == name.lower() else setting.upper
    value = (raw or "").strip()
    shown = redact(value)
    readers = ("grpc",) if name == "GRPC_PROXY" else ALL_TOOLS
    if raw is not None and raw != value:
        tools = _only(("go", "urllib", "requests", "httpx", "curl", "grpc"), readers)
        yield _finding(
            "CP523",
            variable,
            tools,
            f"{variable} has spaces around its value: carto_proxy strips them, but "
            f"{tool_names(tools)} fail or silently ignore the proxy.",
            f"write {variable}={shown} without surrounding spaces",
        )
    scheme, sep, rest = value.partition("://")
    if not sep:
        tools = _only(("grpc", "undici", "proxy-from-env"), readers)
        yield _finding(
            "CP524",
            variable,
            tools,
            f"{variable}={shown!r} has no scheme: gRPC ignores it and connects directly, undici "
            "refuses it, proxy-from-env uses the request's scheme (TLS to a plain proxy for "
            "https URLs).",
            f"write http://{shown}",
        )
        rest = value
    elif scheme.lower() == "https":
        tools = _only(("urllib", "grpc"), readers)
        yield _finding(
            "CP525",
            variable,
            tools,
            f"{variable} is an https:// proxy: Python urllib sends it a plain-text CONNECT and "
            "gRPC ignores it and connects directly.",
            "allow direct egress for gRPC clients, and do not use urllib-based clients through "
            "this proxy",
        )
    authority = rest.partition("/")[0].rpartition("@")[2]
    has_port = (
        authority.rpartition("]")[2].count(":") == 1
        if authority.startswith("[")
        else (":" in authority)
    )
    if authority and not has_port:
        tools = _only(("curl", "grpc"), readers)
        yield _finding(
            "CP526",
            variable,
            tools,
            f"{variable}={shown!r} has no port: carto_proxy assumes the scheme's default, curl 7 "
            "uses 1080 and gRPC 443.",
            "write the port explicitly, e.g. http://my-proxy:3128",
        )
    if name == "HTTP_PROXY" and sources.get("HTTPS_PROXY").value is None:
        yield _finding(
            "CP527",
            variable,
            ("undici",),
            "HTTP_PROXY is set and HTTPS_PROXY is not: carto_proxy (like curl, Go and Python) "
            "sends https:// URLs direct, but undici uses http_proxy for them.",
            "set HTTPS_PROXY and https_proxy too (CARTO marks them mandatory)",
        )


def _only(tools: tuple[str, ...], readers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in tools if t in readers)


def _finding(
    code: str, variable: str, tools: tuple[str, ...], message: str, fix: str
) -> Diagnostic:
    return finding(code, variable, message, fix, tools=tools)
