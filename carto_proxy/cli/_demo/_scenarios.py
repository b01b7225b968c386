"""The demo's scenarios: which settings it runs, how it points them at itself, what came of it.

A scenario is one set of CARTO settings (an example ``.env`` file, ``--env-file`` or
``--helm-values``), checked as ``carto-proxy check --ca-elsewhere`` would. A configuration
carto_proxy refuses is said so, and nothing is sent. Otherwise its proxy variables are pointed
at a :class:`RecordingProxy` of the same scheme and its CA at the demo's, everything else kept
as written (``NODE_TLS_REJECT_UNAUTHORIZED=0`` too: then the TLS proxy's CA is left out, and
the proxy hop goes unverified); every request of :data:`REQUESTS` is sent under it, and each
outcome is judged against its route: a proxied request must reach the proxy and not go
direct, a direct one the reverse, and a request to an untrusted origin must be refused.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from carto_proxy import _env
from carto_proxy._config import ProxyConfig, build
from carto_proxy._diagnostics import Diagnostic
from carto_proxy._proxy_url import parse_proxy
from carto_proxy._routing import Action, Route
from carto_proxy.cli._check import gather_sources
from carto_proxy.cli._demo._requests import (
    HTTP_NAMES,
    REQUESTS,
    STORAGE_API,
    TIMEOUT,
    UNTRUSTED,
    Request,
    Servers,
    refused_certificate,
)
from carto_proxy.cli._shared import Source
from carto_proxy.exceptions import ConfigError
from carto_proxy.testing import DirectGuard, ProxyRecord, RecordingProxy, ca_bundle

__all__ = [
    "Outcome",
    "Rewrite",
    "Scenario",
    "Settings",
    "all_as_expected",
    "read_scenarios",
    "run_scenario",
]

EXAMPLES = ("http-proxy.env", "https-proxy.env")
REPOSITORY_EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
"""Where CARTO's example files are in a source checkout; a packaged copy serves otherwise."""
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rewrite:
    """A setting the demo changed to point the scenario at itself, and why."""

    variables: tuple[str, ...]
    was: str | None
    now: str
    why: str


@dataclass(slots=True, kw_only=True)
class Outcome:
    """What came of one request: its route, its result, and what the proxy and resolver saw."""

    request: Request
    route: Route
    result: str = ""
    ok: bool = True
    refused: bool = False
    """It failed on the origin's certificate."""
    proxy_saw: list[str] = field(default_factory=list)
    went_direct: bool = False
    note: str | None = None

    @property
    def expected(self) -> bool:
        """Whether it went the way its route says (through the proxy only, or direct only)
        and came back as it should: answered, or refused for an untrusted origin."""
        answered = self.refused if self.request.refused else self.ok
        if self.route.action is Action.PROXY:
            return answered and bool(self.proxy_saw) and not self.went_direct
        return answered and not self.proxy_saw and self.went_direct


@dataclass(slots=True, kw_only=True)
class Scenario:
    """One set of settings run by the demo, and everything that came of it."""

    source: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    findings: list[Diagnostic] = field(default_factory=list)
    """What ``carto-proxy check --ca-elsewhere`` says of the settings as written."""
    rewrites: list[Rewrite] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    tls: str = ""
    """Which TLS hops are verified, for people."""
    error: str | None = None
    """Why carto_proxy refuses the settings (then nothing is sent)."""
    outcomes: list[Outcome] = field(default_factory=list)
    proxy_log: list[dict[str, Any]] = field(default_factory=list)


class Settings(NamedTuple):
    """One scenario's settings: how it is shown, its variables, and what they were read as."""

    name: str
    environ: dict[str, str]
    sources: _env.Sources


def read_scenarios(source: Source) -> list[Settings]:
    """Return the settings of each scenario *source* asks for.

    The two CARTO examples by default; else the ``--env-file`` as written, or the
    ``--helm-values`` as the ``.env`` variables they mean (checked as Helm values).
    """
    from dotenv import dotenv_values

    if source.env_file is not None:
        sources = source.read()  # the usual checks: the file can be read
        values = dotenv_values(source.env_file)
        environ = {k: v for k, v in values.items() if v is not None}
        return [Settings(source.env_file, environ, sources)]
    if source.helm_values is not None:
        sources = source.read()
        try:
            environ = build(sources, ca="defer").to_env(ca_path="(inline CA)")
        except ConfigError:
            environ = {}  # refused: run_scenario() says why, and sends nothing
        return [Settings(f"Helm values {source.helm_values}", environ, sources)]
    found = []
    for name in EXAMPLES:
        shown, text = example(name)
        values = dotenv_values(stream=io.StringIO(text))
        environ = {k: v for k, v in values.items() if v is not None}
        found.append(Settings(shown, environ, _env.read_environ(environ, origin=shown)))
    return found


def example(name: str) -> tuple[str, str]:
    """The example file from the repository when present, else the copy in the package."""
    repository = REPOSITORY_EXAMPLES / name
    if repository.is_file():
        return f"examples/{name}", repository.read_text(encoding="utf-8")
    packaged = resources.files("carto_proxy").joinpath("data", "examples", name)
    return f"{name} (packaged copy)", packaged.read_text(encoding="utf-8")


def run_scenario(
    settings: Settings,
    *,
    ca_pem: str,
    servers: Servers,
    adapters: Mapping[str, Any],
    guard: DirectGuard,
) -> Scenario:
    """Check *settings*, then run every request of an installed adapter under them.

    Args:
        settings: the scenario's settings, as written.
        ca_pem: the CA (or CAs) of the stand-ins the scenario trusts.
        servers: the stand-ins.
        adapters: the adapter modules installed, by name.
        guard: the resolver patch that tells a direct connection.
    """
    scenario = Scenario(source=settings.name)
    scenario.diagnostics, scenario.findings = gather_sources(settings.sources, ca="defer")
    try:
        written = build(settings.sources, ca="defer")
    except ConfigError as error:  # carto_proxy would not start with it: nothing to send
        scenario.error = str(error)
        return scenario
    upstreams = dict.fromkeys(HTTP_NAMES, servers.http)
    upstreams[UNTRUSTED] = servers.untrusted
    if servers.grpc is not None:
        upstreams[STORAGE_API] = servers.grpc
    with contextlib.ExitStack() as stack:
        proxies = {
            scheme: stack.enter_context(
                RecordingProxy(tls=scheme == "https", upstreams=upstreams, timeout=TIMEOUT)
            )
            for scheme in _proxy_schemes(settings.environ)
        }
        # As written, NODE_TLS_REJECT_UNAUTHORIZED=0 leaves the proxy unverified: its CA is
        # left out, so that the requests through it show what that means.
        trusted = [p.ca_pem for p in proxies.values() if p.tls and written.verify_proxy]
        bundle = stack.enter_context(ca_bundle(ca_pem, *trusted))
        pointed = _point_at_demo(scenario, settings.environ, proxies, bundle)
        scenario.tls = _tls_note(proxies, verify_proxy=written.verify_proxy)
        config = ProxyConfig.from_env(environ=pointed)
        for request in REQUESTS:
            adapter = adapters.get(request.adapter)
            if adapter is not None:
                scenario.outcomes.append(_send(request, adapter, config, servers, proxies, guard))
        for proxy in proxies.values():
            proxy.wait_for(lambda records: all(r.done for r in records), timeout=2.0)
            scenario.proxy_log += [_log_entry(proxy, record) for record in proxy.records]
    return scenario


def _tls_note(proxies: Mapping[str, RecordingProxy], *, verify_proxy: bool) -> str:
    origins = "origins are verified (one whose CA is not trusted is refused)"
    if not any(proxy.tls for proxy in proxies.values()):
        return f"TLS: {origins}; the proxy is plain http://."
    if verify_proxy:
        return f"TLS: the proxy hop is verified (its CA is in the bundle), and {origins}."
    return (
        "TLS: the proxy hop is NOT verified (NODE_TLS_REJECT_UNAUTHORIZED=0, as written: the "
        "proxy's CA is not in the bundle, and requests through it still succeed); "
        f"{origins}."
    )


def _proxy_schemes(environ: Mapping[str, str]) -> list[str]:
    schemes = []
    for key, value in environ.items():
        if key.upper() in _PROXY_VARIABLES and value.strip():
            try:
                schemes.append(parse_proxy(value, variable=key).url.scheme)
            except ConfigError:
                continue  # left as written: building the configuration reports it
    return list(dict.fromkeys(schemes))


def _point_at_demo(
    scenario: Scenario,
    environ: Mapping[str, str],
    proxies: Mapping[str, RecordingProxy],
    bundle: str,
) -> dict[str, str]:
    pointed = dict(environ)
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, value in environ.items():
        if key.upper() in _PROXY_VARIABLES and value.strip():
            try:
                url = parse_proxy(value, variable=key).url
            except ConfigError:
                continue
            pointed[key] = f"{url.scheme}://127.0.0.1:{proxies[url.scheme].port}"
            grouped.setdefault((value, pointed[key]), []).append(key)
    for (was, now), names in grouped.items():
        kind = "TLS, with its own CA" if now.startswith("https") else "plain"
        scenario.rewrites.append(
            Rewrite(variables=tuple(names), was=was, now=now, why=f"the recording proxy, {kind}")
        )
    tls = any(proxy.tls for proxy in proxies.values())
    verified = environ.get("NODE_TLS_REJECT_UNAUTHORIZED", "").strip() != "0"
    why = "the stand-ins' CA"
    if tls:
        why += " and the TLS proxy's CA" if verified else ", not the TLS proxy's: see TLS below"
    scenario.rewrites.append(
        Rewrite(
            variables=("NODE_EXTRA_CA_CERTS",),
            was=environ.get("NODE_EXTRA_CA_CERTS"),
            now=bundle,
            why=why,
        )
    )
    pointed["NODE_EXTRA_CA_CERTS"] = bundle
    changed = {name for rewrite in scenario.rewrites for name in rewrite.variables}
    scenario.kept = [key for key in environ if key not in changed]
    return pointed


def _send(
    request: Request,
    adapter: Any,
    config: ProxyConfig,
    servers: Servers,
    proxies: Mapping[str, RecordingProxy],
    guard: DirectGuard,
) -> Outcome:
    outcome = Outcome(
        request=request, route=config.route(request.target, protocol=request.protocol)
    )
    host = outcome.route.target.host
    before = {scheme: len(proxy.records) for scheme, proxy in proxies.items()}
    answered = servers.answered()
    guard.clear()
    servers.by_address.clear()
    try:
        with warnings.catch_warnings():
            # urllib3 warns at each request through an unverified proxy: the TLS line of the
            # scenario says so once.
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            outcome.result = request.send(adapter, config, servers)
    except Exception as error:  # any failure is part of what the demo shows
        outcome.ok = False
        refused = refused_certificate(error)
        outcome.refused = refused is not None
        if refused is not None:
            outcome.result = f"refused: certificate verify failed: {refused.verify_message}"
        else:
            message = " ".join(str(error).split()) or error.__class__.__name__
            outcome.result = f"error: {error.__class__.__name__}: {message[:160]}"
    outcome.proxy_saw = [
        f"{record.method} {_record_target(record)}"
        for scheme, proxy in proxies.items()
        for record in proxy.records[before[scheme] :]
        if record.host == host
    ]
    outcome.note = servers.by_address[0] if servers.by_address else request.note
    # A client dialled by address resolves no name: it went direct if a stand-in answered it
    # while the proxy saw nothing.
    outcome.went_direct = guard.went_direct(host) or (
        bool(servers.by_address) and not outcome.proxy_saw and servers.answered() > answered
    )
    return outcome


def _record_target(record: ProxyRecord) -> str:
    if record.method == "CONNECT":
        return str(record.authority)
    host = record.authority.removesuffix(":80")
    return f"http://{host}{record.path or ''}"


def _log_entry(proxy: RecordingProxy, record: ProxyRecord) -> dict[str, Any]:
    return {
        "proxy": proxy.scheme,
        "method": record.method,
        "target": _record_target(record),
        "status": record.status,
        "bytes_up": record.bytes_up,
        "bytes_down": record.bytes_down,
        "ms": None if record.duration is None else round(record.duration * 1000, 1),
        "error": record.error,
    }


def all_as_expected(scenarios: Sequence[Scenario]) -> bool:
    """Whether every scenario ran and every request in it went the way its route says."""
    return all(s.error is None and all(o.expected for o in s.outcomes) for s in scenarios)
