"""The demo's scenarios: which settings it runs, how it points them at itself, what came of it.

A scenario is one set of CARTO settings (an example ``.env`` file, ``--env-file`` or
``--helm-values``). Its proxy variables are pointed at a :class:`RecordingProxy` of the same
scheme and its CA at the demo's; every request of :data:`REQUESTS` is sent under it, and each
outcome is judged against its route: a proxied request must reach the proxy and not go
direct, a direct one the reverse.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import parse_proxy
from carto_proxy._routing import Action, Route
from carto_proxy.cli._demo._requests import (
    HTTP_NAMES,
    REQUESTS,
    STORAGE_API,
    TIMEOUT,
    Request,
    Servers,
)
from carto_proxy.cli._shared import Source
from carto_proxy.exceptions import ConfigError
from carto_proxy.testing import DirectGuard, ProxyRecord, RecordingProxy, ca_bundle

__all__ = ["Outcome", "Rewrite", "Scenario", "all_as_expected", "read_scenarios", "run_scenario"]

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
    proxy_saw: list[str] = field(default_factory=list)
    went_direct: bool = False
    note: str | None = None

    @property
    def expected(self) -> bool:
        """Whether it went the way its route says: through the proxy only, or direct only."""
        if self.route.action is Action.PROXY:
            return self.ok and bool(self.proxy_saw) and not self.went_direct
        return self.ok and not self.proxy_saw and self.went_direct


@dataclass(slots=True, kw_only=True)
class Scenario:
    """One set of settings run by the demo, and everything that came of it."""

    source: str
    rewrites: list[Rewrite] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    error: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    proxy_log: list[dict[str, Any]] = field(default_factory=list)


def read_scenarios(source: Source) -> list[tuple[str, dict[str, str]]]:
    """Return ``(shown name, variables)`` for each scenario *source* asks for.

    The two CARTO examples by default; else the ``--env-file`` as written, or the
    ``--helm-values`` as the ``.env`` variables they mean.
    """
    from dotenv import dotenv_values

    if source.env_file is not None:
        source.read()  # the usual checks: the file exists
        values = dotenv_values(source.env_file)
        return [(source.env_file, {k: v for k, v in values.items() if v is not None})]
    if source.helm_values is not None:
        config = source.config()
        return [(f"Helm values {source.helm_values}", config.to_env(ca_path="(inline CA)"))]
    found = []
    for name in EXAMPLES:
        shown, text = example(name)
        values = dotenv_values(stream=io.StringIO(text))
        found.append((shown, {k: v for k, v in values.items() if v is not None}))
    return found


def example(name: str) -> tuple[str, str]:
    """The example file from the repository when present, else the copy in the package."""
    repository = REPOSITORY_EXAMPLES / name
    if repository.is_file():
        return f"examples/{name}", repository.read_text(encoding="utf-8")
    packaged = resources.files("carto_proxy").joinpath("data", "examples", name)
    return f"{name} (packaged copy)", packaged.read_text(encoding="utf-8")


def run_scenario(
    name: str,
    environ: Mapping[str, str],
    *,
    ca_pem: str,
    servers: Servers,
    adapters: Mapping[str, Any],
    guard: DirectGuard,
) -> Scenario:
    """Run every request of an installed adapter under *environ*, pointed at the demo.

    Args:
        name: how the scenario is shown.
        environ: its variables, as written.
        ca_pem: the CA (or CAs) of the stand-ins, trusted with the proxy's.
        servers: the stand-ins.
        adapters: the adapter modules installed, by name.
        guard: the resolver patch that tells a direct connection.
    """
    scenario = Scenario(source=name)
    upstreams = dict.fromkeys(HTTP_NAMES, servers.http)
    if servers.grpc is not None:
        upstreams[STORAGE_API] = servers.grpc
    with contextlib.ExitStack() as stack:
        proxies = {
            scheme: stack.enter_context(
                RecordingProxy(tls=scheme == "https", upstreams=upstreams, timeout=TIMEOUT)
            )
            for scheme in _proxy_schemes(environ)
        }
        tls_cas = [proxy.ca_pem for proxy in proxies.values() if proxy.tls]
        bundle = stack.enter_context(ca_bundle(ca_pem, *tls_cas))
        pointed = _point_at_demo(scenario, environ, proxies, bundle)
        try:
            config = ProxyConfig.from_env(environ=pointed)
        except ConfigError as error:
            scenario.error = str(error)
            return scenario
        for request in REQUESTS:
            adapter = adapters.get(request.adapter)
            if adapter is not None:
                scenario.outcomes.append(_send(request, adapter, config, servers, proxies, guard))
        for proxy in proxies.values():
            proxy.wait_for(lambda records: all(r.done for r in records), timeout=2.0)
            scenario.proxy_log += [_log_entry(proxy, record) for record in proxy.records]
    return scenario


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
    scenario.rewrites.append(
        Rewrite(
            variables=("NODE_EXTRA_CA_CERTS",),
            was=environ.get("NODE_EXTRA_CA_CERTS"),
            now=bundle,
            why="the stand-ins' CA" + (" and the TLS proxy's CA" if tls else ""),
        )
    )
    pointed["NODE_EXTRA_CA_CERTS"] = bundle
    if tls and environ.get("NODE_TLS_REJECT_UNAUTHORIZED", "").strip() == "0":
        pointed["NODE_TLS_REJECT_UNAUTHORIZED"] = "1"
        scenario.rewrites.append(
            Rewrite(
                variables=("NODE_TLS_REJECT_UNAUTHORIZED",),
                was="0",
                now="1",
                why="the demo has the proxy's CA, so it verifies the proxy",
            )
        )
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
        outcome.result = request.send(adapter, config, servers)
    except Exception as error:  # any failure is part of what the demo shows
        message = " ".join(str(error).split()) or error.__class__.__name__
        outcome.result = f"error: {error.__class__.__name__}: {message[:160]}"
        outcome.ok = False
    outcome.proxy_saw = [
        f"{record.method} {_record_target(record)}"
        for scheme, proxy in proxies.items()
        for record in proxy.records[before[scheme] :]
        if record.host == host
    ]
    outcome.note = servers.by_address[0] if servers.by_address else None
    # A client dialled by address resolves no name: it went direct if a stand-in answered it
    # while the proxy saw nothing.
    outcome.went_direct = guard.went_direct(host) or (
        outcome.note is not None and not outcome.proxy_saw and servers.answered() > answered
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
