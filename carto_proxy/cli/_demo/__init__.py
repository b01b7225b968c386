"""``carto-proxy demo``: the library at work, on loopback only.

Starts the testing kit's :class:`~carto_proxy.testing.RecordingProxy` (plain for an
``http://`` proxy, TLS with its own CA, verified, for an ``https://`` one) and local stand-ins
for CARTO's external services; loads CARTO's two example ``.env`` files (or ``--env-file`` /
``--helm-values``), points their proxy variables at the recording proxy and their CA at the
demo's; sends requests through every adapter whose library is installed; and prints which went
through the proxy and which went direct, and why, next to the proxy's own log.

No DNS lookup and no connection leaves the machine: proxied names are mapped by the proxy's
``upstreams``, direct ones by a resolver patch (``LoopbackNames``) that refuses every
other name (gRPC, which resolves names in C, is dialled by address), and the process's own
proxy variables are set aside while the demo runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from carto_proxy._cli_common import (
    EXIT_FINDINGS,
    EXIT_OK,
    AddCommand,
    Source,
    emit,
    emit_json,
    route_json,
    table,
    wrap,
)
from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import parse_proxy
from carto_proxy._routing import Action, Route
from carto_proxy._target import Protocol
from carto_proxy.exceptions import ConfigError, MissingExtraError

__all__ = ["register", "run"]

AUTH = "auth.carto.com"
STORAGE = "storage.googleapis.com"
TOOLS = "tools.google.com"
MAPBOX = "api.mapbox.com"
DROPBOX = "www.dropbox.com"
FILESTACK = "filestack.com"
BIGQUERY = "bigquery.googleapis.com"
STORAGE_API = "bigquerystorage.googleapis.com"
SNOWFLAKE = "xy12345.eu-central-1.snowflakecomputing.com"
HTTP_NAMES = (AUTH, STORAGE, TOOLS, MAPBOX, DROPBOX, FILESTACK, BIGQUERY, SNOWFLAKE)
EXAMPLES = ("http-proxy.env", "https-proxy.env")
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")
_SET_ASIDE = (*_PROXY_VARIABLES, "NO_PROXY", "NO_GRPC_PROXY", "ALL_PROXY")
_TIMEOUT = 5.0


def register(add: AddCommand) -> None:
    """Add the ``demo`` command."""
    add(
        "demo",
        run,
        help="run requests through every installed adapter against a local recording proxy",
        description="Load CARTO's example .env files (or --env-file/--helm-values), point them "
        "at a local recording proxy and local stand-ins for CARTO's services, send requests "
        "through every installed adapter, and show which went through the proxy and which "
        "went direct, and why. Loopback only: no DNS, no network. Needs the 'testing' extra "
        "(trustme).",
    )


# --- what the demo sends -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request:
    adapter: str  # module under carto_proxy.adapters
    label: str
    target: str  # what is routed
    protocol: Protocol | None = None
    send: _Send


@dataclass(frozen=True, slots=True, kw_only=True)
class _Servers:
    http: tuple[str, int]
    grpc: tuple[str, int]
    answered: Callable[[], int]  # requests the stand-ins answered so far
    # Why a client that resolves names outside Python dialled a stand-in by address.
    by_address: list[str] = field(default_factory=list)


_Send = Callable[[Any, ProxyConfig, _Servers], str]
"""Send one request with an adapter module, under a configuration; return what came back."""


def _httpx(url: str) -> _Send:
    def send(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
        with adapter.client(config, timeout=_TIMEOUT) as client:
            return str(client.get(url).status_code)

    return send


def _urllib3(url: str) -> _Send:
    def send(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
        manager = adapter.pool_manager(config, timeout=_TIMEOUT, retries=False)
        try:
            return str(manager.request("GET", url).status)
        finally:
            manager.clear()

    return send


def _requests(url: str) -> _Send:
    def send(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
        with adapter.session(config) as session:
            return str(session.get(url, timeout=_TIMEOUT).status_code)

    return send


def _grpc_ping(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
    from carto_proxy._cli_demo_standins import GRPC_METHOD

    target = f"{STORAGE_API}:443"
    route = config.route(target, protocol=Protocol.GRPC)
    if route.action is Action.PROXY:
        channel = adapter.secure_channel(config, target)
    else:
        # gRPC resolves names in C, out of reach of the demo's resolver: dial the stand-in's
        # address in place of the name (as LoopbackNames does for Python clients), keeping the
        # name for TLS and the adapter's channel arguments (its own proxy lookup off).
        servers.by_address.append(
            "gRPC resolves names in C, out of reach of the demo's resolver: it dialled the "
            "stand-in's address, with the name kept for TLS."
        )
        names = [("grpc.ssl_target_name_override", STORAGE_API), ("grpc.default_authority", target)]
        _, options = adapter.dial(config, target, names, tls=True)
        ip, port = servers.grpc
        channel = adapter.grpc.secure_channel(
            f"ipv4:{ip}:{port}", adapter.ssl_credentials(config), options=options
        )
    try:
        reply: bytes = channel.unary_unary(GRPC_METHOD)(b"ping", timeout=_TIMEOUT)
        return reply.decode()
    finally:
        channel.close()


def _bigquery(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
    credentials: Any = importlib.import_module("google.auth.credentials")
    client = adapter.client(
        config, project="carto-demo", credentials=credentials.AnonymousCredentials()
    )
    try:
        datasets = list(client.list_datasets(timeout=_TIMEOUT, retry=None))
        return f"{len(datasets)} datasets"
    finally:
        client.close()


def _snowflake(adapter: Any, config: ProxyConfig, servers: _Servers) -> str:
    params: dict[str, Any] = {
        "account": "xy12345",
        "host": SNOWFLAKE,
        "user": "demo",
        "password": "demo",  # the stand-in accepts anything
        "login_timeout": int(_TIMEOUT),
    }
    if adapter.driver_major() >= 5:
        # 5.x deprecates network_timeout and warns unless the logout behaviour is explicit.
        params.update(
            request_timeout=int(_TIMEOUT), enable_server_session_keep_alive_auto_detection=False
        )
        route = config.route(f"https://{SNOWFLAKE}", warehouse="snowflake")
        if route.action is Action.DIRECT:
            # The 5.x driver resolves names in Rust, out of reach of the demo's resolver: take
            # the adapter's parameters for the name, then dial the stand-in's address.
            servers.by_address.append(
                "The 5.x driver resolves names in Rust, out of reach of the demo's resolver: it "
                "dialled the stand-in's address, with the parameters the adapter gave for the name."
            )
            params = adapter.connect_kwargs(config, **params)
            params.update(host=servers.http[0], port=servers.http[1])
            connection = adapter.snowflake_connector.connect(**params)
            connection.close()
            return "logged in"
    else:
        params.update(network_timeout=_TIMEOUT)
    connection = adapter.connect(config, **params)
    connection.close()
    return "logged in"


def _get(adapter: str, url: str, sender: Callable[[str], _Send]) -> _Request:
    """A GET of *url* with *adapter*: routed, labelled and sent as that URL."""
    return _Request(adapter=adapter, label=f"GET {url}", target=url, send=sender(url))


REQUESTS = (
    _get("httpx", f"https://{AUTH}/", _httpx),
    _get("httpx", f"https://{DROPBOX}/", _httpx),
    _get("urllib3", f"https://{STORAGE}/", _urllib3),
    _get("urllib3", f"http://{TOOLS}/", _urllib3),
    _get("requests", f"https://{MAPBOX}/", _requests),
    _get("requests", f"https://{FILESTACK}/", _requests),
    _Request(
        adapter="grpc",
        label=f"Ping {STORAGE_API}:443",
        target=f"{STORAGE_API}:443",
        protocol=Protocol.GRPC,
        send=_grpc_ping,
    ),
    _Request(
        adapter="bigquery",
        label="list datasets (REST)",
        target=f"https://{BIGQUERY}/",
        send=_bigquery,
    ),
    _Request(
        adapter="snowflake",
        label=f"log in to {SNOWFLAKE.split('.')[0]}",
        target=f"https://{SNOWFLAKE}/",
        send=_snowflake,
    ),
)
_ADAPTERS = tuple(dict.fromkeys(request.adapter for request in REQUESTS))


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rewrite:
    variables: tuple[str, ...]
    was: str | None
    now: str
    why: str


@dataclass(slots=True, kw_only=True)
class _Outcome:
    adapter: str
    label: str
    route: Route
    result: str
    ok: bool
    proxy_saw: list[str]
    went_direct: bool
    expected: bool = False
    note: str | None = None


@dataclass(slots=True, kw_only=True)
class _Scenario:
    source: str
    rewrites: list[_Rewrite] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    error: str | None = None
    outcomes: list[_Outcome] = field(default_factory=list)
    proxy_log: list[dict[str, Any]] = field(default_factory=list)


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``demo``; return the exit status."""
    started = time.monotonic()
    scenarios = _scenarios(source)
    available, skipped = _adapters()
    from carto_proxy._cli_demo_standins import DemoCA, GrpcStandIn, HttpStandIn, LoopbackNames

    ca = DemoCA((*HTTP_NAMES, STORAGE_API))
    grpc_module = available["grpc"].grpc if "grpc" in available else None
    results = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carto-demo-")))
        stack.enter_context(_environment_set_aside())
        http = stack.enter_context(HttpStandIn(ca))
        grpc_address = ("127.0.0.1", 0)
        grpc_stand_in = None
        if grpc_module is not None:
            grpc_stand_in = stack.enter_context(GrpcStandIn(ca, grpc_module))
            grpc_address = grpc_stand_in.address

        def answered() -> int:
            return len(http.requests) + (len(grpc_stand_in.requests) if grpc_stand_in else 0)

        servers = _Servers(http=http.address, grpc=grpc_address, answered=answered)
        guard = stack.enter_context(LoopbackNames(dict.fromkeys(HTTP_NAMES, http.address)))
        for name, environ in scenarios:
            results.append(_run_scenario(name, environ, ca, servers, available, guard, workdir))
    ok = all(s.error is None and all(o.expected for o in s.outcomes) for s in results)
    elapsed = time.monotonic() - started
    if args.json:
        emit_json(_json(results, skipped, ok, elapsed))
    else:
        _print(results, skipped, ok, elapsed)
    return EXIT_OK if ok else EXIT_FINDINGS


def _scenarios(source: Source) -> list[tuple[str, dict[str, str]]]:
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
        shown, text = _example(name)
        values = dotenv_values(stream=io.StringIO(text))
        found.append((shown, {k: v for k, v in values.items() if v is not None}))
    return found


def _example(name: str) -> tuple[str, str]:
    """The example file from the repository when present, else the copy in the package."""
    repository = Path(__file__).resolve().parent.parent / "examples" / name
    if repository.is_file():
        return f"examples/{name}", repository.read_text(encoding="utf-8")
    packaged = resources.files("carto_proxy").joinpath("data", "examples", name)
    return f"{name} (packaged copy)", packaged.read_text(encoding="utf-8")


def _adapters() -> tuple[dict[str, Any], dict[str, str]]:
    available: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in _ADAPTERS:
        try:
            available[name] = importlib.import_module(f"carto_proxy.adapters.{name}")
        except MissingExtraError as error:
            skipped[name] = str(error)
        except ModuleNotFoundError as error:
            if error.name != f"carto_proxy.adapters.{name}":
                raise
            skipped[name] = "this version of carto-proxy has no such adapter"
    return available, skipped


@contextlib.contextmanager
def _environment_set_aside() -> Iterator[None]:
    """Set the process's proxy variables aside, and keep Snowflake off cloud metadata."""
    names = [*_SET_ASIDE, *(name.lower() for name in _SET_ASIDE)]
    names.append("SNOWFLAKE_DISABLE_PLATFORM_DETECTION")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    # Snowflake drivers probe 169.254.169.254 and metadata.google.internal at login.
    os.environ["SNOWFLAKE_DISABLE_PLATFORM_DETECTION"] = "true"
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(saved)


def _run_scenario(
    name: str,
    environ: Mapping[str, str],
    ca: Any,
    servers: _Servers,
    adapters: Mapping[str, Any],
    guard: Any,
    workdir: Path,
) -> _Scenario:
    from carto_proxy.testing import RecordingProxy

    scenario = _Scenario(source=name)
    schemes = _proxy_schemes(environ)
    upstreams = dict.fromkeys(HTTP_NAMES, servers.http)
    if servers.grpc[1]:
        upstreams[STORAGE_API] = servers.grpc
    with contextlib.ExitStack() as stack:
        proxies = {
            scheme: stack.enter_context(
                RecordingProxy(tls=scheme == "https", upstreams=upstreams, timeout=_TIMEOUT)
            )
            for scheme in schemes
        }
        bundle = workdir / f"demo-ca-{len(os.listdir(workdir))}.pem"
        bundle.write_bytes(ca.ca_pem + b"".join(p.ca_pem for p in proxies.values() if p.tls))
        pointed = _point_at_demo(scenario, environ, proxies, str(bundle))
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
    scenario: _Scenario, environ: Mapping[str, str], proxies: Mapping[str, Any], bundle: str
) -> dict[str, str]:
    pointed = dict(environ)
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, value in environ.items():
        if key.upper() in _PROXY_VARIABLES and value.strip():
            try:
                url = parse_proxy(value, variable=key).url
            except ConfigError:
                continue
            proxy = proxies[url.scheme]
            pointed[key] = f"{url.scheme}://127.0.0.1:{proxy.port}"
            grouped.setdefault((value, pointed[key]), []).append(key)
    for (was, now), names in grouped.items():
        kind = "TLS, with its own CA" if now.startswith("https") else "plain"
        scenario.rewrites.append(
            _Rewrite(variables=tuple(names), was=was, now=now, why=f"the recording proxy, {kind}")
        )
    tls = any(proxy.tls for proxy in proxies.values())
    scenario.rewrites.append(
        _Rewrite(
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
            _Rewrite(
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
    request: _Request,
    adapter: Any,
    config: ProxyConfig,
    servers: _Servers,
    proxies: Mapping[str, Any],
    guard: Any,
) -> _Outcome:
    route = config.route(request.target, protocol=request.protocol)
    host = route.target.host
    before = {scheme: len(proxy.records) for scheme, proxy in proxies.items()}
    answered = servers.answered()
    guard.clear()
    servers.by_address.clear()
    try:
        result = request.send(adapter, config, servers)
        ok = True
    except Exception as error:  # any failure is part of what the demo shows
        message = " ".join(str(error).split()) or error.__class__.__name__
        result = f"error: {error.__class__.__name__}: {message[:160]}"
        ok = False
    saw = []
    for scheme, proxy in proxies.items():
        for record in proxy.records[before[scheme] :]:
            if record.host == host:
                saw.append(f"{record.method} {_record_target(record)}")
    note = servers.by_address[0] if servers.by_address else None
    went_direct = guard.went_direct(host) or (
        note is not None and not saw and servers.answered() > answered
    )
    outcome = _Outcome(
        adapter=request.adapter,
        label=request.label,
        route=route,
        result=result,
        ok=ok,
        proxy_saw=saw,
        went_direct=went_direct,
        note=note,
    )
    if route.action is Action.PROXY:
        outcome.expected = ok and bool(saw) and not went_direct
    else:
        outcome.expected = ok and not saw and went_direct
    return outcome


def _record_target(record: Any) -> str:
    if record.method == "CONNECT":
        return str(record.authority)
    host = record.authority.removesuffix(":80")
    return f"http://{host}{record.path or ''}"


def _log_entry(proxy: Any, record: Any) -> dict[str, Any]:
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


# --- output ----------------------------------------------------------------------------------


def _json(
    scenarios: list[_Scenario], skipped: Mapping[str, str], ok: bool, elapsed: float
) -> dict[str, Any]:
    return {
        "ok": ok,
        "elapsed_s": round(elapsed, 2),
        "skipped": [{"adapter": name, "reason": reason} for name, reason in skipped.items()],
        "scenarios": [
            {
                "source": scenario.source,
                "error": scenario.error,
                "rewrites": [
                    {"variables": list(r.variables), "was": r.was, "now": r.now, "why": r.why}
                    for r in scenario.rewrites
                ],
                "kept": scenario.kept,
                "requests": [
                    {
                        "adapter": o.adapter,
                        "request": o.label,
                        "route": route_json(o.route),
                        "result": o.result,
                        "proxy_saw": o.proxy_saw,
                        "went_direct": o.went_direct,
                        "as_expected": o.expected,
                        "note": o.note,
                    }
                    for o in scenario.outcomes
                ],
                "proxy_log": scenario.proxy_log,
            }
            for scenario in scenarios
        ],
    }


def _print(
    scenarios: list[_Scenario], skipped: Mapping[str, str], ok: bool, elapsed: float
) -> None:
    emit("carto-proxy demo: CARTO's proxy settings at work, against a local recording proxy")
    emit("and local stand-ins (loopback only: no DNS lookup, no connection leaves this machine).")
    for scenario in scenarios:
        emit()
        emit(f"== {scenario.source} ==")
        emit("Pointed at the demo:")
        for rewrite in scenario.rewrites:
            emit(f"  {', '.join(rewrite.variables)}:")
            emit(f"      {rewrite.was or '(unset)'} -> {rewrite.now}  ({rewrite.why})")
        if scenario.kept:
            emit(f"Kept as written: {', '.join(scenario.kept)}")
        if scenario.error:
            emit(f"The configuration is refused: {scenario.error}")
            continue
        emit()
        rows = [
            (
                o.adapter,
                o.label,
                o.route.action.value,
                o.route.rule.value,
                o.result if o.ok else "error",
                ", ".join(o.proxy_saw) or "-",
                "" if o.expected else "UNEXPECTED",
            )
            for o in scenario.outcomes
        ]
        headers = ("ADAPTER", "REQUEST", "ROUTE", "RULE", "RESULT", "THE PROXY SAW", "")
        lines = table(headers, rows, "  ")
        emit(lines[0])
        for line, outcome in zip(lines[1:], scenario.outcomes, strict=True):
            emit(line)
            for text in wrap(outcome.route.reason, "      "):
                emit(text)
            for extra in (outcome.result if not outcome.ok else None, outcome.note):
                for text in wrap(extra, "      ") if extra else ():
                    emit(text)
        emit()
        emit("The recording proxy's own log:")
        if not scenario.proxy_log:
            emit("  (nothing)")
        log_rows = [
            (
                entry["method"],
                entry["target"],
                str(entry["status"]),
                f"{entry['bytes_up']} B up, {entry['bytes_down']} B down",
                "-" if entry["ms"] is None else f"{entry['ms']:.0f} ms",
            )
            for entry in scenario.proxy_log
        ]
        if log_rows:
            for line in table(("METHOD", "TARGET", "STATUS", "PAYLOAD", "TIME"), log_rows, "  "):
                emit(line)
    emit()
    for name, reason in skipped.items():
        emit(f"Skipped the {name} adapter: {reason}")
    verdict = "every request went the way its route says" if ok else "SOME REQUESTS DID NOT"
    emit(f"Done in {elapsed:.1f} s: {verdict}.")
