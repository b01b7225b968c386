"""What the httpx, urllib3 and requests adapter tests share: their unit-test configuration, the
hostile environment, and the integration cases.

Every case runs a real request through a real Squid (plain ``http_port`` and TLS
``https_port``) to local origins, and reads the outcome from Squid's access log, the origins' own
request logs and the test process's resolver. An adapter's test module subclasses
:class:`HTTPAdapterCases` and provides a ``driver`` fixture: a :class:`Driver` that opens that
adapter's client for a :class:`ProxyConfig`.

The process environment is hostile during every case (``HTTPS_PROXY`` points at a dead port,
``NO_PROXY=*``...): the adapters must follow the configuration they are given, never the
environment.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from carto_proxy import ProxyConfig
from tests.support.names import API_HOST, DENIED_HOST, DIRECT_HOST, LOOPBACK, SNOWFLAKE_HOST
from tests.support.origins import Origins, OriginServer
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS
from tests.support.squid import AccessLogEntry, Squid, SquidLog

TIMEOUT = 5.0
"""Client timeout for requests expected to succeed."""
SHORT_TIMEOUT = 1.0
"""Client timeout for requests to a proxy that never answers."""
REUSED_REQUESTS = 50

# What a careless library would pick up from the environment: a dead proxy, a bypass-all
# NO_PROXY, CA bundles that do not exist.
HOSTILE_ENVIRON = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "all_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "*",
    "no_proxy": "*",
    "REQUESTS_CA_BUNDLE": "/nonexistent/carto-proxy-test-ca.pem",
    "CURL_CA_BUNDLE": "/nonexistent/carto-proxy-test-ca.pem",
    "SSL_CERT_FILE": "/nonexistent/carto-proxy-test-ca.pem",
}

CONFIG = ProxyConfig.from_env(
    environ={
        "HTTP_PROXY": "http://plain-only.test:8080",
        "HTTPS_PROXY": "http://proxy.test:3128",
        "NO_PROXY": "direct.test,10.0.0.0/8",
    }
)
"""What the unit tests route by: a proxy per scheme, and a name and a CIDR that go direct."""


def make_hostile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set :data:`HOSTILE_ENVIRON` for the rest of the test."""
    for name, value in HOSTILE_ENVIRON.items():
        monkeypatch.setenv(name, value)


@dataclass(frozen=True, slots=True)
class Reply:
    """What an origin answered: its status and JSON body (``origin``, ``path``, ``host``)."""

    status: int
    body: Mapping[str, Any]


class Fetcher(ABC):
    """One open client of the adapter under test."""

    @abstractmethod
    def __init__(self, config: ProxyConfig, timeout: float, **options: Any) -> None:
        """Open a client for *config* whose requests time out after *timeout* seconds;
        *options* are adapter arguments (``proxy_handshake_timeout=``)."""

    @abstractmethod
    def get(self, url: str) -> Reply:
        """GET *url* (following redirects) and return the final reply."""

    @abstractmethod
    def close(self) -> None:
        """Close the client and every connection it holds."""


class Driver:
    """Opens the adapter's client; one subclass per adapter (and per sync/async flavour)."""

    name: ClassVar[str]
    fetcher: ClassVar[type[Fetcher]]
    """The adapter's client."""
    error: ClassVar[type[BaseException] | tuple[type[BaseException], ...]]
    """What the client raises when a request fails."""
    attempts: ClassVar[int] = 1
    """Connection attempts the client makes by default (urllib3 retries 3 times)."""
    warns_unverified_proxy: ClassVar[bool] = False
    """urllib3 warns (InsecureRequestWarning) when it forwards through an unverified proxy."""

    @contextlib.contextmanager
    def client(
        self, config: ProxyConfig, *, timeout: float = TIMEOUT, **options: Any
    ) -> Iterator[Fetcher]:
        """Open a client for *config* (with adapter *options*); close it on exit."""
        fetcher = self.fetcher(config, timeout, **options)
        try:
            yield fetcher
        finally:
            fetcher.close()


def make_config(
    proxy: str,
    ca: Path | None,
    *,
    no_proxy: str | None = None,
    verify_proxy: bool = True,
) -> ProxyConfig:
    """A configuration with *proxy* for http and https targets, read from an explicit mapping."""
    environ = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy}
    if ca is not None:
        environ["NODE_EXTRA_CA_CERTS"] = str(ca)
    if no_proxy is not None:
        environ["NO_PROXY"] = no_proxy
    if not verify_proxy:
        environ["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
    return ProxyConfig.from_env(environ=environ)


def error_text(error: BaseException) -> str:
    """Every message in *error*'s chain: causes, contexts and wrapped errors (urllib3's)."""
    parts: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        pending += [item for item in linked if isinstance(item, BaseException)]
    return "\n".join(parts)


def token(driver: Driver) -> str:
    """A unique path prefix, so a test finds its own requests in session-wide logs."""
    return f"/{driver.name}/{uuid.uuid4().hex[:12]}"


def origin_requests(origin: OriginServer, prefix: str) -> list[Any]:
    """The requests *origin* answered whose path starts with *prefix*."""
    return [request for request in origin.requests if request.path.startswith(prefix)]


@dataclass(frozen=True, slots=True)
class Lab:
    """What a case runs against: the session's CAs, Squid and origins, this test's view of
    Squid's log, and this process's patched resolver."""

    pki: PKI
    squid: Squid
    log: SquidLog
    origins: Origins
    dns: FakeDNS

    def proxy(self, *, tls: bool) -> tuple[str, Path]:
        """Squid's plain or TLS listener, and the CA file that makes it (and origins) trusted.

        The TLS proxy's CA comes from NODE_EXTRA_CA_CERTS, bundled with the origin CA.
        """
        if tls:
            return self.squid.https_url, self.pki.bundle_path
        return self.squid.http_url, self.pki.origin_ca_path

    def settle(self) -> None:
        """Make sure Squid has logged every transaction of closed clients.

        Squid logs a CONNECT when its tunnel closes. A sentinel request on a fresh connection is
        processed after the close of any earlier tunnel, so once it is logged, an absent entry
        is really absent. The sentinel goes to ``DENIED_HOST``, which Squid refuses at once.
        """
        sentinel = f"/sentinel/{uuid.uuid4().hex}"
        conn = http.client.HTTPConnection(LOOPBACK, self.squid.http_port, timeout=TIMEOUT)
        try:
            conn.request("GET", f"http://{DENIED_HOST}{sentinel}")
            conn.getresponse().read()
        finally:
            conn.close()
        self.log.wait_for(lambda entry: entry.target.endswith(sentinel), what="sentinel entry")

    def tunnels(self, host: str, port: int) -> list[AccessLogEntry]:
        """The CONNECTs Squid logged to *host*:*port*."""
        return [e for e in self.log.seen(host, method="CONNECT") if e.port == port]


# -- servers these cases need beyond the shared harness --------------------------------------


class _RedirectHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: Redirector

    def do_GET(self) -> None:
        target = parse_qs(urlsplit(self.path).query).get("to", [""])[0]
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Host")))
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class Redirector(ThreadingHTTPServer):
    """A plain HTTP server on 127.0.0.1 answering ``GET /...?to=URL`` with a 302 to URL."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []
        super().__init__((LOOPBACK, 0), _RedirectHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (socket.getfqdn); not here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, int(self.server_address[1])

    def url(self, host: str, path: str, to: str) -> str:
        """The URL of this server under *host* that redirects to *to*."""
        return f"http://{host}:{self.server_port}{path}?to={to}"

    def paths(self) -> list[str]:
        """The paths (with queries) requested so far."""
        with self.lock:
            return [path for path, _ in self.requests]


@contextlib.contextmanager
def running_redirector() -> Iterator[Redirector]:
    """Start a :class:`Redirector`; stop it (and its connections) on exit."""
    server = Redirector()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@contextlib.contextmanager
def silent_proxy() -> Iterator[str]:
    """A proxy URL whose port accepts TCP connections (in the backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"


def closed_port() -> int:
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# -- the cases -------------------------------------------------------------------------------


BOTH_PROXIES = pytest.mark.parametrize("tls", [False, True], ids=["plain-proxy", "tls-proxy"])
"""Run a case through Squid's plain listener and through its TLS one."""


@pytest.mark.integration
class HTTPAdapterCases:
    """Integration cases; a subclass provides the ``driver`` fixture."""

    @pytest.fixture(autouse=True)
    def hostile_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point every variable a library might read somewhere harmful."""
        make_hostile(monkeypatch)

    @pytest.fixture
    def lab(
        self, pki: PKI, squid: Squid, squid_log: SquidLog, origins: Origins, fake_dns: FakeDNS
    ) -> Lab:
        return Lab(pki=pki, squid=squid, log=squid_log, origins=origins, dns=fake_dns)

    @pytest.fixture
    def redirector(self) -> Iterator[Redirector]:
        """A redirecting server for one test (it starts in milliseconds)."""
        with running_redirector() as server:
            yield server

    # 1, 2 -- http and https targets through the plain and the TLS proxy ------------------

    @BOTH_PROXIES
    def test_http_and_https_targets_go_through_the_proxy(
        self, driver: Driver, tls: bool, lab: Lab
    ) -> None:
        origins = lab.origins
        listener = lab.squid.https_port if tls else lab.squid.http_port
        prefix = token(driver)
        with driver.client(make_config(*lab.proxy(tls=tls))) as client:
            plain = client.get(origins.http.url_for(API_HOST, f"{prefix}/plain"))
            secure = client.get(origins.https.url_for(API_HOST, f"{prefix}/secure"))
        assert (plain.status, plain.body["origin"]) == (200, "http")
        assert (secure.status, secure.body["origin"]) == (200, "https")
        assert secure.body["host"] == f"{API_HOST}:{origins.https.port}"

        lab.settle()
        forwarded = lab.log.wait_for(
            lambda e: e.method == "GET" and e.target.endswith(f"{prefix}/plain")
        )
        assert forwarded.listener_port == listener
        assert forwarded.target == origins.http.url_for(API_HOST, f"{prefix}/plain")
        tunnels = lab.tunnels(API_HOST, origins.https.port)
        assert [(t.listener_port, t.status) for t in tunnels] == [(listener, 200)]
        assert len(origin_requests(origins.http, prefix)) == 1
        assert len(origin_requests(origins.https, prefix)) == 1
        # Only the proxy resolved the name: the client never connected to it by itself.
        assert not lab.dns.resolved(API_HOST)

    # 3 -- proxy certificate verification, and NODE_TLS_REJECT_UNAUTHORIZED=0 ----------------

    @pytest.mark.parametrize("scheme", ["http", "https"])
    def test_tls_proxy_without_its_ca_is_refused_at_the_proxy(
        self, driver: Driver, scheme: str, lab: Lab
    ) -> None:
        # The origin CA is trusted, the proxy CA is not: only the proxy hop can fail.
        origin = lab.origins.https if scheme == "https" else lab.origins.http
        prefix = token(driver)
        with (
            driver.client(make_config(lab.squid.https_url, lab.pki.origin_ca_path)) as client,
            pytest.raises(driver.error) as failure,
        ):
            client.get(origin.url_for(API_HOST, prefix))
        assert "CERTIFICATE_VERIFY_FAILED" in error_text(failure.value)
        lab.settle()
        assert lab.log.seen(API_HOST) == []  # nothing got past the TLS handshake
        assert origin_requests(origin, prefix) == []

    def test_unverified_proxy_still_verifies_origins(self, driver: Driver, lab: Lab) -> None:
        origins = lab.origins
        # NODE_TLS_REJECT_UNAUTHORIZED=0 and no proxy CA: the proxy hop is not verified...
        config = make_config(
            lab.squid.https_url, lab.pki.origin_ca_path, no_proxy=DIRECT_HOST, verify_proxy=False
        )
        prefix = token(driver)
        with driver.client(config) as client:
            secure = client.get(origins.https.url_for(API_HOST, f"{prefix}/secure"))
            if driver.warns_unverified_proxy:
                with pytest.warns(Warning, match="Unverified HTTPS request"):
                    plain = client.get(origins.http.url_for(API_HOST, f"{prefix}/plain"))
            else:
                plain = client.get(origins.http.url_for(API_HOST, f"{prefix}/plain"))
            # ...but origins are: through the proxy and directly.
            with pytest.raises(driver.error) as proxied_failure:
                client.get(origins.untrusted.url_for(API_HOST, prefix))
            with pytest.raises(driver.error) as direct_failure:
                client.get(origins.untrusted.url_for(DIRECT_HOST, prefix))
        assert (secure.status, plain.status) == (200, 200)
        assert "CERTIFICATE_VERIFY_FAILED" in error_text(proxied_failure.value)
        assert "CERTIFICATE_VERIFY_FAILED" in error_text(direct_failure.value)
        assert origin_requests(origins.untrusted, prefix) == []
        lab.settle()
        # The tunnel to the untrusted origin was opened: the failure was at the origin hop.
        ports = {e.port for e in lab.log.seen(API_HOST, method="CONNECT")}
        assert ports == {origins.https.port, origins.untrusted.port}
        assert lab.log.seen(DIRECT_HOST) == []

    # 4 -- NO_PROXY forms and Snowflake go direct ---------------------------------------------

    @pytest.mark.parametrize(
        ("entry", "host"),
        [
            ("direct.example.test", DIRECT_HOST),
            ("example.test", DIRECT_HOST),
            (".example.test", DIRECT_HOST),
            ("*.example.test", DIRECT_HOST),
            ("DIRECT.Example.Test.", DIRECT_HOST),
            ("direct.example.test:{port}", DIRECT_HOST),
            ("127.0.0.1", LOOPBACK),
            ("127.0.0.0/8", LOOPBACK),
            ("127.0.0.1:{port}", LOOPBACK),
        ],
        ids=[
            "domain",
            "parent",
            "dot-parent",
            "wildcard",
            "case-dot",
            "port",
            "ip",
            "cidr",
            "ip-port",
        ],
    )
    def test_no_proxy_hosts_go_direct(
        self, driver: Driver, entry: str, host: str, lab: Lab
    ) -> None:
        https = lab.origins.https
        no_proxy = "other.invalid, " + entry.format(port=https.port)
        prefix = token(driver)
        config = make_config(lab.squid.http_url, lab.pki.origin_ca_path, no_proxy=no_proxy)
        with driver.client(config) as client:
            reply = client.get(https.url_for(host, prefix))
        assert (reply.status, reply.body["origin"], reply.body["path"]) == (200, "https", prefix)
        assert len(origin_requests(https, prefix)) == 1
        lab.settle()
        assert lab.log.seen(host) == []
        if host != LOOPBACK:
            assert lab.dns.resolved(host)  # the client connected to it itself

    def test_no_proxy_port_entry_spares_other_ports(self, driver: Driver, lab: Lab) -> None:
        https = lab.origins.https
        other_port = https.port + 1 if https.port < 65535 else 1
        config = make_config(
            lab.squid.http_url, lab.pki.origin_ca_path, no_proxy=f"{DIRECT_HOST}:{other_port}"
        )
        prefix = token(driver)
        with driver.client(config) as client:
            assert client.get(https.url_for(DIRECT_HOST, prefix)).status == 200
        lab.settle()
        assert [e.port for e in lab.log.seen(DIRECT_HOST, method="CONNECT")] == [https.port]
        assert not lab.dns.resolved(DIRECT_HOST)

    @BOTH_PROXIES
    def test_snowflake_goes_direct_under_a_tls_proxy_only(
        self, driver: Driver, tls: bool, lab: Lab
    ) -> None:
        https = lab.origins.https
        proxy = lab.squid.https_url if tls else lab.squid.http_url
        prefix = token(driver)
        with driver.client(make_config(proxy, lab.pki.bundle_path)) as client:
            reply = client.get(https.url_for(SNOWFLAKE_HOST, prefix))
        assert (reply.status, reply.body["host"]) == (200, f"{SNOWFLAKE_HOST}:{https.port}")
        lab.settle()
        if tls:  # Snowflake does not support HTTPS proxies: bypassed
            assert lab.log.seen(SNOWFLAKE_HOST) == []
            assert lab.dns.resolved(SNOWFLAKE_HOST)
        else:  # an HTTP proxy is fine for Snowflake
            assert len(lab.log.seen(SNOWFLAKE_HOST, method="CONNECT")) == 1
            assert not lab.dns.resolved(SNOWFLAKE_HOST)

    # 5 -- connection reuse ----------------------------------------------------------------------

    @BOTH_PROXIES
    def test_sequential_requests_reuse_one_tunnel(
        self, driver: Driver, tls: bool, lab: Lab
    ) -> None:
        https = lab.origins.https
        prefix = token(driver)
        with driver.client(make_config(*lab.proxy(tls=tls))) as client:
            for index in range(REUSED_REQUESTS):
                assert client.get(https.url_for(API_HOST, f"{prefix}/{index}")).status == 200
        lab.settle()
        assert len(lab.tunnels(API_HOST, https.port)) == 1
        served = origin_requests(https, prefix)
        assert len(served) == REUSED_REQUESTS
        assert len({request.client for request in served}) == 1  # one upstream connection

    # 6 -- a dead or silent proxy fails fast and clearly ----------------------------------------

    def test_refused_proxy_fails_fast(self, driver: Driver, pki: PKI, origins: Origins) -> None:
        proxy = f"http://{LOOPBACK}:{closed_port()}"
        started = time.monotonic()
        with (
            driver.client(make_config(proxy, pki.origin_ca_path), timeout=SHORT_TIMEOUT) as client,
            pytest.raises(driver.error) as failure,
        ):
            client.get(origins.https.url_for(API_HOST, "/refused"))
        assert time.monotonic() - started < SHORT_TIMEOUT * driver.attempts + 1.0
        text = error_text(failure.value)
        assert "refused" in text.lower() or "Errno 111" in text
        assert proxy.rpartition(":")[2] in text  # the message names the proxy's address

    def test_silent_proxy_times_out(self, driver: Driver, pki: PKI, origins: Origins) -> None:
        with silent_proxy() as proxy:
            started = time.monotonic()
            with (
                driver.client(
                    make_config(proxy, pki.origin_ca_path), timeout=SHORT_TIMEOUT
                ) as client,
                pytest.raises(driver.error) as failure,
            ):
                client.get(origins.https.url_for(API_HOST, "/silent"))
            elapsed = time.monotonic() - started
        assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT * driver.attempts + 2.0
        text = error_text(failure.value).lower()
        assert "timed out" in text or "timeout" in text

    # DESIGN §3.7 -- every redirect hop is routed again --------------------------------------

    @pytest.mark.parametrize("first", ["proxied", "direct"])
    def test_each_redirect_hop_is_routed(
        self, driver: Driver, first: str, lab: Lab, redirector: Redirector
    ) -> None:
        config = make_config(lab.squid.http_url, lab.pki.origin_ca_path, no_proxy=DIRECT_HOST)
        prefix = token(driver)
        start_host, end_host = (
            (API_HOST, DIRECT_HOST) if first == "proxied" else (DIRECT_HOST, API_HOST)
        )
        landing = lab.origins.https.url_for(end_host, f"{prefix}/landed")
        with driver.client(config) as client:
            reply = client.get(redirector.url(start_host, f"{prefix}/start", landing))
        assert (reply.status, reply.body["path"]) == (200, f"{prefix}/landed")
        assert any(path.startswith(f"{prefix}/start") for path in redirector.paths())
        lab.settle()
        proxied_hops = [
            e.method for e in lab.log.seen(API_HOST) if prefix in e.target or e.method == "CONNECT"
        ]
        assert lab.log.seen(DIRECT_HOST) == []
        assert lab.dns.resolved(DIRECT_HOST)
        assert not lab.dns.resolved(API_HOST)
        if first == "proxied":  # hop 1 forwarded by Squid, hop 2 direct
            assert proxied_hops == ["GET"]
        else:  # hop 1 direct, hop 2 tunnelled by Squid
            assert proxied_hops == ["CONNECT"]
