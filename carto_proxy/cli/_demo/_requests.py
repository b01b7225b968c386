"""What ``carto-proxy demo`` sends: one request per adapter, to a name CARTO's services use.

Each request is sent with the adapter's public functions only; the TCP warehouses
(PostgreSQL, Redshift) have no adapter, so a plain socket connects to them, as their drivers
do. Clients that resolve names outside Python cannot be pointed at the stand-ins by the
demo's resolver patch; when their route is direct, they are dialled at the stand-in's address
with the route still decided on the name, and :attr:`Servers.by_address` says so next to the
request. One request goes to an origin whose certificate no CA of the scenario trusts: it
must be refused, whatever ``NODE_TLS_REJECT_UNAUTHORIZED`` says.
"""

from __future__ import annotations

import importlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Action
from carto_proxy._target import Protocol
from carto_proxy.exceptions import MissingExtraError

__all__ = [
    "GRPC_METHOD",
    "HTTP_NAMES",
    "REQUESTS",
    "STORAGE_API",
    "UNTRUSTED",
    "Request",
    "Servers",
    "load_adapters",
    "refused_certificate",
]

AUTH = "auth.carto.com"
STORAGE = "storage.googleapis.com"
TOOLS = "tools.google.com"
MAPBOX = "api.mapbox.com"
DROPBOX = "www.dropbox.com"
FILESTACK = "filestack.com"
BIGQUERY = "bigquery.googleapis.com"
STORAGE_API = "bigquerystorage.googleapis.com"
SNOWFLAKE = "xy12345.eu-central-1.snowflakecomputing.com"
DATABRICKS = "dbc-a1b2c3d4-e5f6.cloud.databricks.com"
POSTGRESQL = "db.internal"
REDSHIFT = "examplecluster.abc123xyz789.eu-west-1.redshift.amazonaws.com"
HTTP_NAMES = (
    AUTH,
    STORAGE,
    TOOLS,
    MAPBOX,
    DROPBOX,
    FILESTACK,
    BIGQUERY,
    SNOWFLAKE,
    DATABRICKS,
    POSTGRESQL,
    REDSHIFT,
)
"""The names the HTTP stand-in answers for (the TCP ones: it accepts the connection)."""
UNTRUSTED = "untrusted.example.com"
"""The name of the origin whose certificate comes from a CA no scenario trusts."""
SOCKET = "socket"
"""The "adapter" of the TCP warehouses: the standard library's sockets, as their drivers."""
GRPC_METHOD = "/carto_proxy.demo.Demo/Ping"
"""The method the gRPC stand-in answers with ``b"pong"``."""
TIMEOUT = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Servers:
    """Where the stand-ins listen, and how many requests they have answered."""

    http: tuple[str, int]
    untrusted: tuple[str, int]
    grpc: tuple[str, int] | None
    answered: Callable[[], int]
    by_address: list[str] = field(default_factory=list)
    """Why a client that resolves names outside Python dialled a stand-in by address."""


Send = Callable[[Any, ProxyConfig, Servers], str]
"""Send one request with an adapter module, under a configuration; return what came back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request of the demo."""

    adapter: str  # module under carto_proxy.adapters, or SOCKET
    label: str
    target: str  # what is routed
    protocol: Protocol | None = None
    send: Send
    refused: bool = False
    """The origin's certificate is not trusted: the request must fail on it."""
    note: str | None = None
    """Shown under the request."""


def _httpx(url: str) -> Send:
    def send(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
        with adapter.client(config, timeout=TIMEOUT) as client:
            return str(client.get(url).status_code)

    return send


def _urllib3(url: str) -> Send:
    def send(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
        manager = adapter.pool_manager(config, timeout=TIMEOUT, retries=False)
        try:
            return str(manager.request("GET", url).status)
        finally:
            manager.clear()

    return send


def _requests(url: str) -> Send:
    def send(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
        with adapter.session(config) as session:
            return str(session.get(url, timeout=TIMEOUT).status_code)

    return send


def _grpc_ping(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
    target = f"{STORAGE_API}:443"
    route = config.route(target, protocol=Protocol.GRPC)
    if route.action is Action.PROXY or servers.grpc is None:
        channel = adapter.secure_channel(config, target)
    else:
        servers.by_address.append(
            "gRPC resolves names in C, out of reach of the demo's resolver: it dialled the "
            "stand-in's address, with the name kept for TLS."
        )
        # The adapter's channel arguments for the name (its own proxy lookup off), with the
        # name kept for TLS and :authority, on a channel to the stand-in's address.
        names = [("grpc.ssl_target_name_override", STORAGE_API), ("grpc.default_authority", target)]
        _, options = adapter.dial(config, target, names, tls=True)
        grpc: Any = importlib.import_module("grpc")
        ip, port = servers.grpc
        channel = grpc.secure_channel(
            f"ipv4:{ip}:{port}", adapter.ssl_credentials(config), options=options
        )
    try:
        reply: bytes = channel.unary_unary(GRPC_METHOD)(b"ping", timeout=TIMEOUT)
        return reply.decode()
    finally:
        channel.close()


def _bigquery(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
    credentials: Any = importlib.import_module("google.auth.credentials")
    client = adapter.client(
        config, project="carto-demo", credentials=credentials.AnonymousCredentials()
    )
    try:
        datasets = list(client.list_datasets(timeout=TIMEOUT, retry=None))
        return f"{len(datasets)} datasets"
    finally:
        client.close()


def _snowflake(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
    params: dict[str, Any] = {
        "account": "xy12345",
        "host": SNOWFLAKE,
        "user": "demo",
        "password": "demo",  # the stand-in accepts anything
        "login_timeout": int(TIMEOUT),
    }
    if adapter.driver_major() < 5:
        params.update(network_timeout=TIMEOUT)
        adapter.connect(config, **params).close()
        return "logged in"
    # 5.x deprecates network_timeout and warns unless the logout behaviour is explicit.
    params.update(
        request_timeout=int(TIMEOUT), enable_server_session_keep_alive_auto_detection=False
    )
    route = config.route(f"https://{SNOWFLAKE}", warehouse="snowflake")
    if route.action is Action.PROXY:
        adapter.connect(config, **params).close()
        return "logged in"
    servers.by_address.append(
        "The 5.x driver resolves names in Rust, out of reach of the demo's resolver: it "
        "dialled the stand-in's address, with the parameters the adapter gave for the name."
    )
    params = adapter.connect_kwargs(config, **params)
    params.update(host=servers.http[0], port=servers.http[1])
    connector: Any = importlib.import_module("snowflake.connector")
    connector.connect(**params).close()
    return "logged in"


def _connect(dsn: str) -> Send:
    def send(adapter: Any, config: ProxyConfig, servers: Servers) -> str:
        target = config.route(dsn).target  # TCP: always direct (CARTO's rule)
        adapter.create_connection((target.host, target.port), timeout=TIMEOUT).close()
        return "connected"

    return send


def refused_certificate(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The refused TLS certificate *error* is, or was raised from; ``None`` if none was."""
    seen: BaseException | None = error
    for _ in range(16):  # chains are short; never loop on a cycle
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _get(adapter: str, url: str, sender: Callable[[str], Send], **more: Any) -> Request:
    """A GET of *url* with *adapter*: routed, labelled and sent as that URL."""
    return Request(adapter=adapter, label=f"GET {url}", target=url, send=sender(url), **more)


def _tcp(dsn: str, label: str) -> Request:
    return Request(adapter=SOCKET, label=label, target=dsn, send=_connect(dsn))


REQUESTS = (
    _get("httpx", f"https://{AUTH}/", _httpx),
    _get("httpx", f"https://{DROPBOX}/", _httpx),
    _get("urllib3", f"https://{STORAGE}/", _urllib3),
    _get("urllib3", f"http://{TOOLS}/", _urllib3),
    _get("requests", f"https://{MAPBOX}/", _requests),
    _get("requests", f"https://{FILESTACK}/", _requests),
    Request(
        adapter="grpc",
        label=f"Ping {STORAGE_API}:443",
        target=f"{STORAGE_API}:443",
        protocol=Protocol.GRPC,
        send=_grpc_ping,
    ),
    Request(
        adapter="bigquery",
        label="list datasets (REST)",
        target=f"https://{BIGQUERY}/",
        send=_bigquery,
    ),
    Request(
        adapter="snowflake",
        label=f"log in to {SNOWFLAKE.split('.')[0]}",
        target=f"https://{SNOWFLAKE}/",
        send=_snowflake,
    ),
    _get("httpx", f"https://{DATABRICKS}/", _httpx),
    _tcp(f"postgresql://carto@{POSTGRESQL}:5432/carto", f"connect {POSTGRESQL}:5432 (PostgreSQL)"),
    _tcp(
        f"redshift://carto@{REDSHIFT}:5439/dev", f"connect {REDSHIFT.split('.')[0]}:5439 (Redshift)"
    ),
    _get(
        "httpx",
        f"https://{UNTRUSTED}/",
        _httpx,
        refused=True,
        note="Its certificate comes from a CA the scenario does not trust: carto_proxy "
        "verifies origins whatever NODE_TLS_REJECT_UNAUTHORIZED says, so it is refused.",
    ),
)
"""Every request of a scenario, in the order they are sent and shown."""


def load_adapters() -> tuple[dict[str, Any], dict[str, str]]:
    """Import the adapters :data:`REQUESTS` use: ``(available by name, skipped with why)``."""
    available: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(request.adapter for request in REQUESTS):
        if name == SOCKET:
            available[name] = socket
            continue
        try:
            available[name] = importlib.import_module(f"carto_proxy.adapters.{name}")
        except MissingExtraError as error:
            skipped[name] = str(error)
        except ModuleNotFoundError as error:
            if error.name != f"carto_proxy.adapters.{name}":
                raise
            skipped[name] = "this version of carto-proxy has no such adapter"
    return available, skipped
