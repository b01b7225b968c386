"""The portability lint: which common tools would read a proxy setting differently.

carto_proxy reads every variable and NO_PROXY entry one way (DESIGN §3); the other programs
on the same machine do not. This lint compares each variable and each NO_PROXY entry with
what Go, curl, Python's urllib, requests, httpx, Node's proxy-from-env and undici, and gRPC do
with it, as measured in ``no-proxy-dialects.md`` (curl 7.88, requests 2.34, httpx 0.28,
proxy-from-env 1.1/2.1, undici 7, grpcio 1.85, Go 1.19), and reports where they part ways.
With Helm values it also checks the Kubernetes exclusions CARTO's Helm guide asks for.

Codes are ``CP5xx`` and never change meaning: ``CP50x``/``CP51x`` NO_PROXY entries,
``CP52x`` variables, ``CP53x`` Kubernetes hints. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from carto_proxy import _env
from carto_proxy._config import ProxyConfig
from carto_proxy._diagnostics import Severity
from carto_proxy._hosts import as_ip
from carto_proxy._proxy_url import redact
from carto_proxy._routing import Rule

__all__ = ["TOOLS", "Finding", "lint"]

TOOLS: dict[str, str] = {
    "go": "Go net/http",
    "curl": "curl",
    "urllib": "Python urllib",
    "requests": "Python requests",
    "httpx": "httpx",
    "proxy-from-env": "Node proxy-from-env (axios)",
    "undici": "Node undici",
    "grpc": "gRPC",
}
"""Tool ids used in :attr:`Finding.tools`, with the names shown to people."""

_ALL = tuple(TOOLS)
_W, _I = Severity.WARNING, Severity.INFO
_DEFAULT_PORTS = (80, 443)
_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_GRPC_ONLY = ("GRPC_PROXY", "NO_GRPC_PROXY")  # variables nothing but gRPC reads
_CLUSTER_PROBE = "carto-proxy-check.svc.cluster.local"
_METADATA_HOSTS = ("169.254.169.254", "metadata", "metadata.google.internal")


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One portability finding.

    Attributes:
        code: stable ``CP5xx`` code.
        severity: ``warning`` (a tool misreads it) or ``info`` (worth knowing).
        variable: the variable it is about, as it was set (``no_proxy``, ``HTTPS_PROXY``...).
        entry: the NO_PROXY entry it is about, as written; ``None`` for a whole variable.
        tools: ids from :data:`TOOLS` of the tools concerned.
        message: what those tools do with it.
        fix: how to write it so that they all agree.
    """

    code: str
    severity: Severity
    variable: str
    entry: str | None
    tools: tuple[str, ...]
    message: str
    fix: str


def lint(config: ProxyConfig) -> list[Finding]:
    """Return the portability findings for *config*, warnings first, then by code.

    Variable findings need the raw values, so they come only for a configuration read by a
    named constructor (``config.sources`` set); NO_PROXY entries are always linted.
    """
    found: list[Finding] = []
    sources = config.sources
    if sources is not None:
        for name in _env.CASE_PAIRS:
            found += _variable(sources.get(name), sources)
    grpc_has_own = config.no_grpc_proxy is not None
    for name, no_proxy in (("NO_PROXY", config.no_proxy), ("NO_GRPC_PROXY", config.no_grpc_proxy)):
        if not no_proxy:
            continue
        shown = _shown_name(sources, name)
        if name == "NO_GRPC_PROXY":
            readers: tuple[str, ...] = ("grpc",)
        else:
            readers = tuple(t for t in _ALL if not (grpc_has_own and t == "grpc"))
        ignored = {item.entry for item in no_proxy.ignored}
        found += _entries(shown, no_proxy.entries, readers, ignored)
    if sources is not None and sources.from_helm and config.has_proxy:
        found += _kubernetes(config)
    order = {Severity.ERROR: 0, _W: 1, _I: 2}
    return sorted(found, key=lambda f: (order[f.severity], f.code))


def _shown_name(sources: _env.Sources | None, name: str) -> str:
    if sources is None:
        return name
    if sources.from_helm and name == "NO_PROXY":
        return "externalProxy.excludedDomains"  # where the entries were written
    return sources.get(name).source or name


def tool_names(tools: Iterable[str]) -> str:
    """``"curl, Python urllib and gRPC"`` for ``("curl", "urllib", "grpc")``."""
    names = [TOOLS[t] for t in tools]
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


# --- NO_PROXY entries ----------------------------------------------------------------------


def _entries(
    variable: str, entries: tuple[str, ...], readers: tuple[str, ...], ignored: set[str]
) -> Iterator[Finding]:
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
        for code, severity, tools, message, fix in _entry(entry, alone=len(entries) == 1):
            concerned = tuple(t for t in tools if t in readers)
            if concerned:
                yield Finding(
                    code=code,
                    severity=severity,
                    variable=variable,
                    entry=shown,
                    tools=concerned,
                    message=message.format(tools=tool_names(concerned), entry=shown),
                    fix=fix,
                )


_Rule = tuple[str, Severity, tuple[str, ...], str, str]


def _entry(entry: str, *, alone: bool) -> Iterator[_Rule]:
    """Yield ``(code, severity, tools, message template, fix)`` for one trimmed entry."""
    if entry == "*":
        if alone:
            yield (
                "CP509",
                _W,
                ("grpc",),
                "'*' alone means 'bypass the proxy for everything', except for {tools}, which "
                "does not understand it and keeps using the proxy.",
                "to send everything direct, unset the proxy variables instead",
            )
        else:
            yield (
                "CP509",
                _W,
                ("curl", "urllib", "requests", "undici", "grpc"),
                "'*' inside a list bypasses the proxy for everything in carto_proxy, Go, httpx "
                "and proxy-from-env, but {tools} ignore it and keep using the proxy.",
                "to send everything direct, unset the proxy variables instead of listing '*'",
            )
        return
    if any(c.isspace() for c in entry):
        yield (
            "CP512",
            _W,
            ("proxy-from-env", "undici", "curl"),
            "{entry!r} holds spaces: carto_proxy and most tools ignore it, but {tools} split it "
            "on the spaces and exempt each part.",
            "separate entries with commas",
        )
        return
    if "/" in entry:
        yield from _cidr(entry)
        return
    host, port = _split_port(entry)
    ip = as_ip(host.strip("[]"))
    if ip is not None:
        yield from _address(entry, host, ip.version, port)
        return
    yield from _name(entry, host, port)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        inner, _, after = entry[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
        return f"[{inner}]", int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _cidr(entry: str) -> Iterator[_Rule]:
    if ":" in entry:
        yield (
            "CP506",
            _W,
            ("urllib", "requests", "proxy-from-env", "undici", "curl", "httpx"),
            "the IPv6 CIDR block {entry!r} is ignored by {tools} (curl 7; httpx 0.28 even "
            "raises for every URL while such an entry is listed).",
            "list the IPv6 addresses the services use, or accept that these tools proxy them",
        )
    else:
        yield (
            "CP505",
            _W,
            ("urllib", "httpx", "proxy-from-env", "undici"),
            "the CIDR block {entry!r} is ignored by {tools}, which send those addresses to the "
            "proxy (httpx only exempts the network address itself).",
            "list the addresses the services use as well, or accept that these tools proxy them",
        )


def _address(entry: str, host: str, version: int, port: int | None) -> Iterator[_Rule]:
    if version == 6 and host.startswith("["):
        yield (
            "CP508",
            _W,
            ("go", "requests", "curl", "grpc", "httpx"),
            "the bracketed IPv6 entry {entry!r} is ignored by {tools} (httpx 0.28 even raises "
            "for every URL while it is listed).",
            f"write the address without brackets: {host.strip('[]')}",
        )
    elif version == 6:
        yield (
            "CP507",
            _W,
            ("urllib", "proxy-from-env", "undici"),
            "the IPv6 entry {entry!r} is ignored by {tools}, which only understand IPv6 "
            "entries in brackets (and brackets break others).",
            "accept that these tools proxy it; no single spelling works everywhere",
        )
    if port is not None:
        tools = ("curl", "grpc", "requests")
        yield (
            "CP504",
            _W,
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
            _W,
            ("curl", "urllib", "requests", "httpx", "grpc"),
            "{entry!r} is ignored by {tools}: they do not understand a leading '*.' and send "
            "these hosts to the proxy.",
            f"write .{bare} (it covers every subdomain, for every tool)",
        )
    elif host.startswith("."):
        yield (
            "CP502",
            _I,
            ("go", "httpx", "proxy-from-env"),
            "{entry!r} covers the subdomains, but {tools} do not apply it to " + bare + " itself.",
            f"also list {bare} if {bare} itself must go direct",
        )
    elif "." in host and not host.endswith(".") and port is None:
        yield (
            "CP503",
            _I,
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
            _W,
            ("go", "urllib", "requests", "httpx", "proxy-from-env", "undici", "grpc"),
            "{entry!r} ends with a dot: only curl (and carto_proxy) drop it; {tools} never "
            "match it.",
            f"write {entry[:-1]}",
        )
    if not host.isascii():
        yield (
            "CP511",
            _W,
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
            _W,
            tools,
            message + "; they send the host to the proxy.",
            "drop the port if the host may bypass the proxy on every port",
        )


# --- variables -----------------------------------------------------------------------------


def _variable(setting: _env.Setting, sources: _env.Sources) -> Iterator[Finding]:
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


def _proxy_value(setting: _env.Setting, sources: _env.Sources) -> Iterator[Finding]:
    name = setting.name
    variable = setting.source or name
    raw = setting.lower if variable == name.lower() else setting.upper
    value = (raw or "").strip()
    shown = redact(value)
    readers = ("grpc",) if name == "GRPC_PROXY" else _ALL
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
    code: str,
    variable: str,
    tools: tuple[str, ...],
    message: str,
    fix: str,
    *,
    severity: Severity = _W,
    entry: str | None = None,
) -> Finding:
    return Finding(
        code=code,
        severity=severity,
        variable=variable,
        entry=entry,
        tools=tools,
        message=message,
        fix=fix,
    )


# --- Kubernetes (Helm values) --------------------------------------------------------------


def _kubernetes(config: ProxyConfig) -> Iterator[Finding]:
    variable = "externalProxy.excludedDomains"
    if config.route(_CLUSTER_PROBE).rule is not Rule.NO_PROXY:
        yield _finding(
            "CP530",
            variable,
            _ALL,
            "in-cluster service names (*.svc.cluster.local) are not excluded: CARTO's Helm "
            "guide says they must be, or calls between CARTO's own services go to the proxy.",
            "add .svc.cluster.local to externalProxy.excludedDomains (Kots: also the "
            "kubernetes service's ClusterIP)",
        )
    missing = [
        host for host in _METADATA_HOSTS if config.route(f"http://{host}").rule is not Rule.NO_PROXY
    ]
    if missing:
        yield _finding(
            "CP531",
            variable,
            _ALL,
            f"the GKE metadata server ({', '.join(missing)}) is not excluded: on GKE with "
            "Workload Identity, credentials come from it and must not go through the proxy.",
            "add 169.254.169.254,metadata,metadata.google.internal to "
            "externalProxy.excludedDomains when running on GKE",
            severity=_I,
        )
    if config.route("http://localhost").rule is not Rule.NO_PROXY:
        yield _finding(
            "CP532",
            variable,
            _ALL,
            "localhost is not excluded: CARTO's Helm examples list it, so that calls inside a "
            "pod never go to the proxy.",
            "add localhost to externalProxy.excludedDomains",
            severity=_I,
        )
