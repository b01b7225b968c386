"""check(): findings about a proxy configuration, each with a stable code.

Codes are grouped by subject: ``CP1xx`` proxy variables, ``CP2xx`` NO_PROXY, ``CP3xx`` TLS.
They are documented in ``docs/diagnostics.md``; a code never changes meaning.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from . import _env
from ._config import ProxyConfig, build
from ._proxy_url import parse_proxy, redact
from ._routing import Rule
from ._target import Protocol
from .exceptions import ConfigError

__all__ = ["Diagnostic", "Severity", "check"]


class Severity(str, enum.Enum):
    """How bad a finding is. ``error``: refused or cannot work; ``warning``: works here but
    is risky or read differently by other tools; ``info``: worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One finding: a stable code, its severity, what it is about, what is wrong, the fix."""

    code: str
    severity: Severity
    variable: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        about = f" {self.variable}" if self.variable else ""
        return f"{self.code} {self.severity.value}{about}: {self.message} Fix: {self.fix}"


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_MANDATORY = {"http": _PROXIES, "https": ("HTTP_PROXY", "HTTPS_PROXY")}


def check(
    config: ProxyConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    helm_values: str | os.PathLike[str] | None = None,
) -> list[Diagnostic]:
    """Return every finding about a configuration, errors first.

    Give a built *config*, or one source to read (*environ*, *env_file* or *helm_values*);
    with nothing, ``os.environ`` is read. Reading a source never raises for a bad value: each
    refused value becomes an ``error`` finding. A source that cannot be read at all (a missing
    file) still raises :class:`ConfigError`.
    """
    errors: list[ConfigError] = []
    if config is None:
        if env_file is not None:
            sources = _env.read_env_file(env_file)
        elif helm_values is not None:
            try:
                sources = _env.read_helm_values(helm_values)
            except ConfigError as error:
                if error.code != _env.HELM_CODE:
                    raise  # the file itself cannot be read
                return [_from_error(error)]
        else:
            sources = _env.read_environ(environ)
        config = build(sources, errors)
    found = [_from_error(error) for error in errors]
    found += _variables(config.sources) if config.sources else []
    found += _proxies(config)
    found += _exclusions(config)
    found += _tls(config)
    order = {_E: 0, _W: 1, _I: 2}
    return sorted(found, key=lambda d: (order[d.severity], d.code))


def _from_error(error: ConfigError) -> Diagnostic:
    return Diagnostic(
        code=error.code,
        severity=_E,
        variable=error.variable,
        message=f"{error.problem} (value {error.value!r}).",
        fix=error.fix,
    )


def _variables(sources: _env.Sources) -> Iterator[Diagnostic]:
    """Findings about how the variables are written: cases, blanks, CGI, ALL_PROXY."""
    for setting in sources.settings.values():
        yield from _cases(setting)
        if setting.value is not None and setting.name in _PROXIES:
            yield from _omissions(setting)
    if sources.cgi and sources.get("HTTP_PROXY").cgi_ignored:
        yield Diagnostic(
            code="CP110",
            severity=_W,
            variable="HTTP_PROXY",
            message="REQUEST_METHOD is set (a CGI environment), so the uppercase HTTP_PROXY is "
            "ignored: a client can set it with a 'Proxy:' header (httpoxy). Go refuses it too.",
            fix="set the lowercase http_proxy instead",
        )
    if sources.all_proxy.value is not None:
        yield Diagnostic(
            code="CP109",
            severity=_I,
            variable=sources.all_proxy.source,
            message="ALL_PROXY is not part of CARTO's configuration and carto_proxy ignores "
            "it, but curl, requests, httpx and proxy-from-env use it for unset schemes.",
            fix="set HTTP_PROXY and HTTPS_PROXY explicitly and unset ALL_PROXY",
        )


def _cases(setting: _env.Setting) -> Iterator[Diagnostic]:
    name, lower, upper = setting.name, setting.lower, setting.upper
    lower_v = lower.strip() if lower is not None else None
    upper_v = upper.strip() if upper is not None else None
    if lower_v and upper_v and lower_v != upper_v:
        yield Diagnostic(
            code="CP103",
            severity=_W,
            variable=name,
            message=f"{name.lower()} and {name} differ ({redact(lower_v)!r} vs "
            f"{redact(upper_v)!r}); carto_proxy and most tools use the lowercase one, Go uses "
            "the UPPERCASE one.",
            fix=f"give {name} and {name.lower()} the same value",
        )
    for blank, other, raw in ((name.lower(), name, lower), (name, name.lower(), upper)):
        if raw is not None and not raw.strip():
            yield Diagnostic(
                code="CP111",
                severity=_W,
                variable=blank,
                message=f"{blank} is set but blank. carto_proxy treats it as unset, but Python's "
                f"urllib, requests and httpx let a blank lowercase variable hide {other}.",
                fix=f"unset {blank}, or give it the same value as {other}",
            )
    if bool(lower_v) != bool(upper_v) and setting.value is not None:
        missing = name if lower_v else name.lower()
        if lower_v:
            blind = ""
        elif name == "HTTP_PROXY":
            blind = " gRPC and curl read only the lowercase http_proxy."
        else:
            blind = f" gRPC reads only the lowercase {name.lower()}."
        yield Diagnostic(
            code="CP102",
            severity=_W,
            variable=missing,
            message=f"only {setting.source} is set; CARTO asks for both cases.{blind}",
            fix=f"set {missing} to the same value",
        )


def _omissions(setting: _env.Setting) -> Iterator[Diagnostic]:
    variable = setting.source or setting.name
    try:
        parsed = parse_proxy(setting.value or "", variable=variable)
    except ConfigError:
        return  # reported as an error already
    if parsed.scheme_assumed:
        yield Diagnostic(
            code="CP104",
            severity=_W,
            variable=variable,
            message=f"{redact(setting.value or '')!r} has no scheme; http:// is assumed (gRPC "
            "ignores a scheme-less proxy and connects directly; proxy-from-env uses the "
            "request's scheme).",
            fix=f"write {parsed.url}",
        )
    if parsed.port_assumed:
        yield Diagnostic(
            code="CP105",
            severity=_W,
            variable=variable,
            message=f"{redact(setting.value or '')!r} has no port; {parsed.url.port} is assumed "
            "(curl 7 uses 1080 and gRPC 443).",
            fix=f"write {parsed.url}",
        )


def _proxy_type(config: ProxyConfig) -> str | None:
    proxies = [p for p in (config.https_proxy, config.http_proxy, config.grpc_proxy) if p]
    return proxies[0].scheme if proxies else None


def _proxies(config: ProxyConfig) -> Iterator[Diagnostic]:
    kind = _proxy_type(config)
    if kind is None:
        return
    values = {
        "HTTP_PROXY": config.http_proxy,
        "HTTPS_PROXY": config.https_proxy,
        "GRPC_PROXY": config.grpc_proxy,
    }
    for name in _MANDATORY[kind]:
        if values[name] is None:
            yield Diagnostic(
                code="CP101",
                severity=_E,
                variable=name,
                message=f"CARTO marks {name} mandatory for an {kind.upper()} proxy, and it is "
                "not set (or was refused).",
                fix=f"set {name} and {name.lower()} to the proxy URL",
            )
    grpc_proxy, grpc_variable = config.proxy_for(Protocol.GRPC)
    if grpc_proxy is not None and grpc_proxy.is_tls:
        yield Diagnostic(
            code="CP108",
            severity=_W,
            variable=grpc_variable,
            message=f"gRPC uses {grpc_variable} ({grpc_proxy}) but cannot speak TLS to a proxy: "
            "gRPC clients connect directly (grpcio does so silently).",
            fix="allow direct egress for gRPC targets such as bigquerystorage.googleapis.com:443, "
            "or give GRPC_PROXY an http:// proxy",
        )


def _exclusions(config: ProxyConfig) -> Iterator[Diagnostic]:
    for variable, no_proxy in (
        ("NO_PROXY", config.no_proxy),
        ("NO_GRPC_PROXY", config.no_grpc_proxy),
    ):
        if no_proxy is None:
            continue
        for ignored in no_proxy.ignored:
            yield Diagnostic(
                code="CP201",
                severity=_W,
                variable=variable,
                message=f"the entry {ignored.entry!r} is ignored: {ignored.reason}.",
                fix=f"rewrite or remove {ignored.entry!r}",
            )
        if no_proxy.match_all is not None and config.has_proxy:
            yield Diagnostic(
                code="CP203",
                severity=_I,
                variable=variable,
                message=f"{variable} contains '*': no target uses the proxy.",
                fix="list the domains to exclude instead of '*', or unset the proxy",
            )
    if config.no_grpc_proxy is not None:
        yield Diagnostic(
            code="CP204",
            severity=_I,
            variable="NO_GRPC_PROXY",
            message="NO_GRPC_PROXY is set, so gRPC targets ignore NO_PROXY entirely.",
            fix="repeat in NO_GRPC_PROXY the NO_PROXY entries gRPC targets need",
        )
    snowflake = config.route("xy12345.snowflakecomputing.com")
    if (
        config.https_proxy is not None
        and config.https_proxy.is_tls
        and (snowflake.rule is not Rule.NO_PROXY)
    ):
        yield Diagnostic(
            code="CP202",
            severity=_W,
            variable="NO_PROXY",
            message="the HTTPS proxy cannot carry Snowflake traffic and .snowflakecomputing.com "
            "is not excluded: carto_proxy sends Snowflake direct, but CARTO's own services "
            "need the NO_PROXY entry to do the same.",
            fix="add .snowflakecomputing.com to NO_PROXY and no_proxy",
        )


def _tls(config: ProxyConfig) -> Iterator[Diagnostic]:
    tls_proxy = any(
        p is not None and p.is_tls
        for p in (config.http_proxy, config.https_proxy, config.grpc_proxy)
    )
    if not config.verify_proxy:
        yield Diagnostic(
            code="CP301" if tls_proxy else "CP302",
            severity=_W if tls_proxy else _I,
            variable="NODE_TLS_REJECT_UNAUTHORIZED",
            message="the proxy's certificate is not verified (carto_proxy still verifies "
            "origins; Node applies the variable to every TLS connection)."
            if tls_proxy
            else "it only affects https:// proxies, and none is configured.",
            fix="give the proxy CA in NODE_EXTRA_CA_CERTS and set NODE_TLS_REJECT_UNAUTHORIZED=1"
            if tls_proxy
            else "remove NODE_TLS_REJECT_UNAUTHORIZED=0",
        )
    if config.extra_ca_pem and config.has_proxy and not tls_proxy:
        yield Diagnostic(
            code="CP303",
            severity=_I,
            variable="NODE_EXTRA_CA_CERTS",
            message="with an http:// proxy the extra CA is only used to verify origins (useful "
            "when the proxy inspects TLS and re-signs origins).",
            fix="nothing to do if the proxy re-signs origins; otherwise remove it",
        )
    if config.extra_ca_pem and tls_proxy:
        yield Diagnostic(
            code="CP304",
            severity=_W,
            variable="NODE_EXTRA_CA_CERTS",
            message="CARTO does not support importing data through an HTTPS proxy whose "
            "certificate is signed by a custom CA.",
            fix="use a proxy certificate from a well-known CA, or an http:// proxy, if data "
            "imports are needed",
        )
