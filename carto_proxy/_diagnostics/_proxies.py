"""Findings about the proxy variables (``CP1xx``): cases, blanks, omissions, CGI, ALL_PROXY."""

from __future__ import annotations

from collections.abc import Iterator

from carto_proxy import _env
from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import parse_proxy, redact
from carto_proxy._target import Protocol
from carto_proxy.exceptions import ConfigError

from ._diagnostic import Diagnostic, finding

__all__ = ["proxy_findings", "variable_findings"]

_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_MANDATORY = {"http": _PROXIES, "https": ("HTTP_PROXY", "HTTPS_PROXY")}


def variable_findings(sources: _env.Sources) -> Iterator[Diagnostic]:
    """Findings about how the variables are written: cases, blanks, CGI, ALL_PROXY."""
    for setting in sources.settings.values():
        yield from _cases(setting)
        if setting.value is not None and setting.name in _PROXIES:
            yield from _omissions(setting)
    if sources.cgi and sources.get("HTTP_PROXY").cgi_ignored:
        yield finding(
            "CP110",
            "HTTP_PROXY",
            "REQUEST_METHOD is set (a CGI environment), so the uppercase HTTP_PROXY is "
            "ignored: a client can set it with a 'Proxy:' header (httpoxy). Go refuses it too.",
            "set the lowercase http_proxy instead",
        )
    if sources.all_proxy.value is not None:
        yield finding(
            "CP109",
            sources.all_proxy.source,
            "ALL_PROXY is not part of CARTO's configuration and carto_proxy ignores it, but "
            "curl, requests, httpx and proxy-from-env use it for unset schemes.",
            "set HTTP_PROXY and HTTPS_PROXY explicitly and unset ALL_PROXY",
        )


def _cases(setting: _env.Setting) -> Iterator[Diagnostic]:
    name, lower, upper = setting.name, setting.lower, setting.upper
    lower_v = lower.strip() if lower is not None else None
    upper_v = upper.strip() if upper is not None else None
    if lower_v and upper_v and lower_v != upper_v:
        yield finding(
            "CP103",
            name,
            f"{name.lower()} and {name} differ ({redact(lower_v)!r} vs {redact(upper_v)!r}); "
            "carto_proxy and most tools use the lowercase one, Go uses the UPPERCASE one.",
            f"give {name} and {name.lower()} the same value",
        )
    for blank, other, raw in ((name.lower(), name, lower), (name, name.lower(), upper)):
        if raw is not None and not raw.strip():
            yield finding(
                "CP111",
                blank,
                f"{blank} is set but blank. carto_proxy treats it as unset, but Python's urllib, "
                f"requests and httpx let a blank lowercase variable hide {other}.",
                f"unset {blank}, or give it the same value as {other}",
            )
    if bool(lower_v) != bool(upper_v) and setting.value is not None:
        missing = name if lower_v else name.lower()
        if lower_v:
            blind = ""
        elif name == "HTTP_PROXY":
            blind = " gRPC and curl read only the lowercase http_proxy."
        else:
            blind = f" gRPC reads only the lowercase {name.lower()}."
        yield finding(
            "CP102",
            missing,
            f"only {setting.source} is set; CARTO asks for both cases.{blind}",
            f"set {missing} to the same value",
        )


def _omissions(setting: _env.Setting) -> Iterator[Diagnostic]:
    variable = setting.source or setting.name
    try:
        parsed = parse_proxy(setting.value or "", variable=variable)
    except ConfigError:
        return  # reported as an error already
    shown = redact(setting.value or "")
    if parsed.scheme_assumed:
        yield finding(
            "CP104",
            variable,
            f"{shown!r} has no scheme; http:// is assumed (gRPC ignores a scheme-less proxy and "
            "connects directly; proxy-from-env uses the request's scheme).",
            f"write {parsed.url}",
        )
    if parsed.port_assumed:
        yield finding(
            "CP105",
            variable,
            f"{shown!r} has no port; {parsed.url.port} is assumed (curl 7 uses 1080 and gRPC 443).",
            f"write {parsed.url}",
        )


def proxy_findings(config: ProxyConfig) -> Iterator[Diagnostic]:
    """Findings about the proxies themselves: mandatory variables, gRPC and TLS proxies."""
    proxies = [p for p in (config.https_proxy, config.http_proxy, config.grpc_proxy) if p]
    if not proxies:
        return
    kind = proxies[0].scheme
    values = {
        "HTTP_PROXY": config.http_proxy,
        "HTTPS_PROXY": config.https_proxy,
        "GRPC_PROXY": config.grpc_proxy,
    }
    for name in _MANDATORY[kind]:
        if values[name] is None:
            yield finding(
                "CP101",
                name,
                f"CARTO marks {name} mandatory for an {kind.upper()} proxy, and it is not set "
                "(or was refused).",
                f"set {name} and {name.lower()} to the proxy URL",
            )
    grpc_proxy, grpc_variable = config.proxy_for(Protocol.GRPC)
    if grpc_proxy is not None and grpc_proxy.is_tls:
        yield finding(
            "CP108",
            grpc_variable,
            f"gRPC uses {grpc_variable} ({grpc_proxy}) but cannot speak TLS to a proxy: gRPC "
            "clients connect directly (grpcio does so silently).",
            "allow direct egress for gRPC targets such as bigquerystorage.googleapis.com:443, "
            "or give GRPC_PROXY an http:// proxy",
        )
