"""Findings about the proxy variables (``CP1xx``): cases, blanks, omissions, CGI, ALL_PROXY.

Each problem is reported once, here, with the tools it matters to (``Diagnostic.tools``); the
portability lint does not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from carto_proxy import _env
from carto_proxy._proxy_url import parse_proxy
from carto_proxy._target import Protocol
from carto_proxy.exceptions import ConfigError

from ._diagnostic import Diagnostic, finding, from_error

if TYPE_CHECKING:
    from carto_proxy._config import ProxyConfig

__all__ = ["losing_case_findings", "proxy_findings", "variable_findings"]

_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_MANDATORY = {"http": _PROXIES, "https": ("HTTP_PROXY", "HTTPS_PROXY")}
_GRPC_ONLY = ("GRPC_PROXY", "NO_GRPC_PROXY")  # variables nothing but gRPC reads


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
            tools=("curl", "requests", "httpx", "proxy-from-env"),
        )


def losing_case_findings(sources: _env.Sources) -> Iterator[Diagnostic]:
    """The refused values of the case carto_proxy does not use, which other tools read.

    A password in ``HTTP_PROXY`` while ``http_proxy`` wins is the same ``CP106`` as in the
    winning case: Go reads the UPPERCASE variable.
    """
    for name in _PROXIES:
        setting = sources.get(name)
        variable, raw = _losing(setting)
        if raw is not None:
            try:
                parse_proxy(raw, variable=variable)
            except ConfigError as error:
                yield from_error(error)


def _losing(setting: _env.Setting) -> tuple[str, str | None]:
    """The losing case's name and value, when it is set, not blank and not the same."""
    name = setting.name
    if setting.source == name.lower():
        variable, raw = name, None if setting.cgi_ignored else setting.upper
    else:
        variable, raw = name.lower(), setting.lower
    if raw is None or not raw.strip() or raw.strip() == setting.value:
        return variable, None
    return variable, raw


def _cases(setting: _env.Setting) -> Iterator[Diagnostic]:
    name, lower, upper = setting.name, setting.lower, setting.upper
    lower_v = lower.strip() if lower is not None else None
    upper_v = upper.strip() if upper is not None else None
    if lower_v and upper_v and lower_v != upper_v:
        yield finding(
            "CP103",
            name,
            f"{name.lower()} and {name} differ ({setting.shown(lower_v)!r} vs "
            f"{setting.shown(upper_v)!r}); carto_proxy and most tools use the lowercase one, "
            "Go uses the UPPERCASE one.",
            f"give {name} and {name.lower()} the same value",
            tools=("go",),
        )
    for blank, other, raw, other_v in (
        (name.lower(), name, lower, upper_v),
        (name, name.lower(), upper, lower_v),
    ):
        if raw is not None and not raw.strip():
            hides = blank == name.lower() and bool(other_v)
            yield finding(
                "CP111",
                blank,
                f"{blank} is set but blank. carto_proxy treats it as unset, but Python's urllib, "
                f"requests and httpx (and Node's undici, and gRPC) let a blank lowercase "
                f"variable hide {other}.",
                f"unset {blank}, or give it the same value as {other}",
                tools=_blank_readers(name) if hides else (),
            )
    if bool(lower_v) != bool(upper_v) and setting.value is not None:
        yield _one_case(setting, name if lower_v else name.lower(), upper_only=not lower_v)


def _blank_readers(name: str) -> tuple[str, ...]:
    if name in _GRPC_ONLY:
        return ("grpc",)
    if name.startswith("NO_"):
        return ("urllib", "httpx", "undici", "grpc")
    return ("urllib", "requests", "httpx", "undici", "grpc")


def _one_case(setting: _env.Setting, missing: str, *, upper_only: bool) -> Diagnostic:
    name = setting.name
    blind: tuple[str, ...] = ()
    if not upper_only:
        text = ""
    elif name in _GRPC_ONLY:
        blind = ("grpc",)
        text = (
            f" The only tool that reads {name}, gRPC, reads the lowercase {name.lower()}: only "
            "carto_proxy uses this value."
        )
    elif name == "HTTP_PROXY":
        blind = ("curl", "grpc")
        text = " gRPC and curl read only the lowercase http_proxy (curl: httpoxy)."
    else:
        blind = ("grpc",)
        text = f" gRPC reads only the lowercase {name.lower()}."
    return finding(
        "CP102",
        missing,
        f"only {setting.source} is set; CARTO asks for both cases.{text}",
        f"set {missing} to the same value",
        tools=blind,
    )


def _omissions(setting: _env.Setting) -> Iterator[Diagnostic]:
    variable = setting.source or setting.name
    try:
        parsed = parse_proxy(setting.value or "", variable=variable)
    except ConfigError:
        return  # reported as an error already
    shown = setting.shown(setting.value or "")
    grpc_only = setting.name == "GRPC_PROXY"
    if parsed.scheme_assumed:
        yield finding(
            "CP104",
            variable,
            f"{shown!r} has no scheme; http:// is assumed (gRPC ignores a scheme-less proxy and "
            "connects directly; Node's undici refuses it; proxy-from-env uses the request's "
            "scheme, so TLS to a plain proxy for https URLs).",
            f"write {parsed.url}",
            tools=("grpc",) if grpc_only else ("grpc", "undici", "proxy-from-env"),
        )
    if parsed.port_assumed:
        yield finding(
            "CP105",
            variable,
            f"{shown!r} has no port; {parsed.url.port} is assumed (curl 7 uses 1080 and gRPC 443).",
            f"write {parsed.url}",
            tools=("grpc",) if grpc_only else ("curl", "grpc"),
        )


def proxy_findings(config: ProxyConfig, errors: Iterable[ConfigError] = ()) -> Iterator[Diagnostic]:
    """Findings about the proxies themselves: none at all, mandatory variables, gRPC and TLS."""
    refused = {error.variable.upper(): error.code for error in errors}
    proxies = [p for p in (config.https_proxy, config.http_proxy, config.grpc_proxy) if p]
    if not proxies:
        if not any(name in refused for name in _PROXIES):
            yield finding(
                "CP113",
                None,
                "no proxy is configured (HTTP_PROXY, HTTPS_PROXY and GRPC_PROXY are unset): "
                "every target goes direct.",
                "nothing to do if this host reaches the internet directly; otherwise set the "
                "proxy variables",
            )
        return
    kind = proxies[0].scheme
    values = {
        "HTTP_PROXY": config.http_proxy,
        "HTTPS_PROXY": config.https_proxy,
        "GRPC_PROXY": config.grpc_proxy,
    }
    for name in _MANDATORY[kind]:
        if values[name] is None:
            yield _mandatory(name, kind, refused.get(name), undici=bool(config.http_proxy))
    grpc_proxy, grpc_variable = config.proxy_for(Protocol.GRPC)
    if grpc_proxy is not None and grpc_proxy.is_tls:
        yield finding(
            "CP108",
            grpc_variable,
            f"gRPC uses {grpc_variable} ({grpc_proxy}) but cannot speak TLS to a proxy: gRPC "
            "clients connect directly (grpcio does so silently).",
            "allow direct egress for gRPC targets such as bigquerystorage.googleapis.com:443, "
            "or give GRPC_PROXY an http:// proxy",
            tools=("grpc",),
        )


def _mandatory(name: str, kind: str, refused: str | None, *, undici: bool) -> Diagnostic:
    state = f"set but refused (see {refused})" if refused else "not set"
    message = f"CARTO marks {name} mandatory for an {kind.upper()} proxy, and it is {state}."
    tools: tuple[str, ...] = ()
    if name == "HTTPS_PROXY" and undici:
        message += (
            " carto_proxy (like curl, Go and Python) sends https:// URLs direct, but Node's "
            "undici uses http_proxy for them."
        )
        tools = ("undici",)
    return finding(
        "CP101", name, message, f"set {name} and {name.lower()} to the proxy URL", tools=tools
    )
