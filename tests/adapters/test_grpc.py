"""carto_proxy.adapters.grpc: channel options, trust, and channels proven through a real Squid."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from carto_proxy import Action, ConfigError, ProxyConfig, Rule
from carto_proxy.testing import record_routes
from tests.support.names import API_HOST, DENIED_HOST, LOOPBACK
from tests.support.pki import PKI
from tests.support.squid import Squid, SquidLog

grpc = pytest.importorskip("grpc")

from carto_proxy.adapters import grpc as adapter  # noqa: E402
from tests.support.grpc_server import (  # noqa: E402
    SERVING,
    GrpcServer,
    health_check,
    health_check_async,
)

SQUID = "http://squid.internal:3128"
DEAD_PROXY = f"http://{LOOPBACK}:9"  # discard port: nothing listens, a proxied call fails


def config_of(**environ: str) -> ProxyConfig:
    return ProxyConfig.from_env(environ=environ)


# -- channel_options: the route as channel arguments -------------------------------------


@pytest.mark.parametrize(
    ("environ", "target", "expected"),
    [
        ({"grpc_proxy": SQUID}, "bigquerystorage.googleapis.com:443", ("grpc.http_proxy", SQUID)),
        # gRPC's own order: GRPC_PROXY, else HTTPS_PROXY, else HTTP_PROXY.
        ({"https_proxy": SQUID}, "dns:///svc.example.com:50051", ("grpc.http_proxy", SQUID)),
        ({"http_proxy": SQUID}, "svc.example.com", ("grpc.http_proxy", SQUID)),
        (
            {"grpc_proxy": SQUID, "https_proxy": "http://other:1"},
            "svc.example.com:443",
            ("grpc.http_proxy", SQUID),
        ),
        # NO_PROXY, in carto_proxy's grammar (gRPC itself understands neither '*.' nor ports).
        ({"grpc_proxy": SQUID, "no_proxy": "*.example.com"}, "a.example.com:443", None),
        ({"grpc_proxy": SQUID, "no_proxy": "a.example.com:50051"}, "a.example.com:50051", None),
        ({"grpc_proxy": SQUID, "no_proxy": "*"}, "a.example.com:443", None),
        # NO_GRPC_PROXY replaces NO_PROXY for gRPC.
        (
            {"grpc_proxy": SQUID, "no_proxy": "example.com", "no_grpc_proxy": "other.com"},
            "a.example.com:443",
            ("grpc.http_proxy", SQUID),
        ),
        # gRPC cannot speak TLS to a proxy: an https:// proxy means direct.
        ({"grpc_proxy": "https://squid.internal:3129"}, "a.example.com:443", None),
        ({}, "a.example.com:443", None),
    ],
)
def test_channel_options_express_the_route(
    environ: dict[str, str], target: str, expected: tuple[str, str] | None
) -> None:
    options = adapter.channel_options(config_of(**environ), target)
    assert options == [expected or ("grpc.enable_http_proxy", 0)]


def test_channel_options_route_https_proxy_with_the_grpc_rule() -> None:
    with record_routes() as seen:
        adapter.channel_options(config_of(grpc_proxy="https://p:3129"), "a.example.com:443")
    assert [(r.action, r.rule) for r in seen] == [(Action.DIRECT, Rule.GRPC_HTTPS_UNSUPPORTED)]
    assert seen[0].needs_direct_egress


def test_channel_options_read_the_environment_only_when_config_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRPC_PROXY", SQUID)
    assert adapter.channel_options(None, "a.example.com:443") == [("grpc.http_proxy", SQUID)]
    direct = ProxyConfig.direct()
    assert adapter.channel_options(direct, "a.example.com:443") == [("grpc.enable_http_proxy", 0)]


# -- dial: how the channel constructors guarantee the route ------------------------------


def test_dial_proxied_target_dials_the_proxy_and_connects_to_the_target() -> None:
    address, options = adapter.dial(
        config_of(grpc_proxy=SQUID), "dns:///Svc.Example.com:8443", tls=True
    )
    assert address == "squid.internal:3128"
    assert options == [
        ("grpc.enable_http_proxy", 0),
        ("grpc.http_connect_server", "svc.example.com:8443"),
        ("grpc.default_authority", "svc.example.com:8443"),
        ("grpc.ssl_target_name_override", "svc.example.com"),
    ]


def test_dial_plaintext_has_no_tls_name_override_and_keeps_caller_options_last() -> None:
    address, options = adapter.dial(
        config_of(grpc_proxy="http://[::1]:3128"),
        "svc.example.com:50051",
        [("grpc.default_authority", "custom"), ("grpc.max_receive_message_length", -1)],
        tls=False,
    )
    assert address == "[::1]:3128"
    assert "grpc.ssl_target_name_override" not in dict(options)
    # gRPC keeps the last value of a repeated argument: the caller's authority wins.
    assert options[-2:] == [
        ("grpc.default_authority", "custom"),
        ("grpc.max_receive_message_length", -1),
    ]


@pytest.mark.parametrize(
    "environ",
    [{"grpc_proxy": SQUID, "no_proxy": "svc.example.com"}, {"https_proxy": "https://p:1"}, {}],
)
def test_dial_direct_target_is_dialled_as_given_with_proxy_lookup_off(
    environ: dict[str, str],
) -> None:
    address, options = adapter.dial(config_of(**environ), "svc.example.com:50051", tls=True)
    assert (address, options) == ("svc.example.com:50051", [("grpc.enable_http_proxy", 0)])


@pytest.mark.parametrize("target", ["unix:/run/app.sock", "unix-abstract:app", "vsock:3:50051"])
def test_dial_local_socket_targets_are_never_proxied(target: str) -> None:
    with record_routes() as seen:
        address, options = adapter.dial(config_of(grpc_proxy=SQUID), target, tls=False)
    assert (address, options, seen) == (target, [("grpc.enable_http_proxy", 0)], [])


@pytest.mark.parametrize(
    "name",
    [
        "grpc.http_proxy",
        "grpc.enable_http_proxy",
        "grpc.http_connect_server",
        "grpc.address_http_proxy",
    ],
)
def test_options_that_would_bypass_the_routing_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        adapter.insecure_channel(config_of(grpc_proxy=SQUID), "a.example.com:1", [(name, "x")])
    assert caught.value.code == "CP400"
    assert name in caught.value.variable


def test_dial_reports_each_decision() -> None:
    with record_routes() as seen:
        adapter.dial(config_of(grpc_proxy=SQUID), "a.example.com:443", tls=True)
    assert [(r.action, r.target.authority) for r in seen] == [(Action.PROXY, "a.example.com:443")]


# -- trust -------------------------------------------------------------------------------


def test_root_certificates_append_the_extra_ca_on_its_own_line(pki: PKI) -> None:
    bundled = adapter.root_certificates(ProxyConfig.direct())
    assert bundled.rstrip().endswith(b"-----END CERTIFICATE-----")
    roots = adapter.root_certificates(config_of(NODE_EXTRA_CA_CERTS=str(pki.proxy_ca_path)))
    extra = pki.proxy_ca.cert_pem.bytes().strip()
    assert roots.startswith(bundled.rstrip(b"\n"))
    assert roots.endswith(extra + b"\n")
    # The bundled file lacks a final newline; the join must not glue two PEM lines together.
    assert b"-----END CERTIFICATE----------BEGIN" not in roots
    assert roots.count(b"-----BEGIN CERTIFICATE-----") == bundled.count(b"-----BEGIN") + 1


def test_ssl_credentials_are_channel_credentials(pki: PKI) -> None:
    credentials = adapter.ssl_credentials(config_of(NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path)))
    assert isinstance(credentials, grpc.ChannelCredentials)


# -- end to end: a real gRPC server, a real Squid ----------------------------------------


@pytest.fixture(scope="module")
def grpc_server(pki: PKI) -> Iterator[GrpcServer]:
    with GrpcServer(pki.origin_ca) as server:
        yield server


@pytest.fixture
def server(grpc_server: GrpcServer) -> GrpcServer:
    grpc_server.clear()
    return grpc_server


def assert_not_proxied(squid: Squid, log: SquidLog, host: str, port: int) -> None:
    """Fail if Squid saw a tunnel to ``host:port``, once every earlier transaction is logged.

    Squid logs a CONNECT when its tunnel closes; a sentinel request sent afterwards and waited
    for makes the absence meaningful.
    """
    with socket.create_connection((LOOPBACK, squid.http_port), timeout=5) as sentinel:
        sentinel.sendall(f"GET http://{DENIED_HOST}/sentinel HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sentinel.recv(64).startswith(b"HTTP/1.1 403")
    log.wait_for(lambda e: e.target.endswith("/sentinel"), what="sentinel")
    assert [e for e in log.entries() if e.host == host and e.port == port] == []


@pytest.mark.integration
def test_plaintext_channel_goes_through_squid_connect(
    squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    config = config_of(grpc_proxy=squid.http_url)
    # Only Squid can resolve API_HOST (its hosts_file): a direct attempt could not connect.
    with adapter.insecure_channel(config, f"{API_HOST}:{server.port}") as channel:
        assert health_check(channel) == SERVING
    entry = squid_log.wait_for_host(API_HOST, method="CONNECT")
    assert (entry.port, entry.listener_port, entry.status) == (server.port, squid.http_port, 200)
    assert [c.method for c in server.calls] == ["/grpc.health.v1.Health/Check"]


@pytest.mark.integration
def test_tls_channel_goes_through_squid_and_verifies_the_origin_with_the_extra_ca(
    pki: PKI, squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    config = config_of(grpc_proxy=squid.http_url, NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path))
    with adapter.secure_channel(config, f"{API_HOST}:{server.tls_port}") as channel:
        assert health_check(channel) == SERVING
    entry = squid_log.wait_for_host(API_HOST, method="CONNECT")
    assert entry.port == server.tls_port


@pytest.mark.integration
def test_tls_channel_without_the_extra_ca_refuses_the_origin(
    squid: Squid, server: GrpcServer
) -> None:
    config = config_of(grpc_proxy=squid.http_url)
    target = f"{API_HOST}:{server.tls_port}"
    with adapter.secure_channel(config, target) as channel, pytest.raises(grpc.RpcError) as caught:
        health_check(channel, timeout=3)
    assert caught.value.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert server.calls == []


@pytest.mark.integration
def test_no_proxy_target_is_reached_directly(
    squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    config = config_of(grpc_proxy=squid.http_url, no_proxy="localhost")
    with adapter.insecure_channel(config, f"localhost:{server.port}") as channel:
        assert health_check(channel) == SERVING
    assert len(server.calls) == 1
    assert_not_proxied(squid, squid_log, "localhost", server.port)


@pytest.mark.integration
def test_https_proxy_is_bypassed_for_grpc(
    pki: PKI, squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    config = config_of(
        grpc_proxy=squid.https_url,
        https_proxy=squid.https_url,
        NODE_EXTRA_CA_CERTS=str(pki.bundle_path),
    )
    with (
        record_routes() as seen,
        adapter.secure_channel(config, f"localhost:{server.tls_port}") as ch,
    ):
        assert health_check(ch) == SERVING
    assert [r.rule for r in seen] == [Rule.GRPC_HTTPS_UNSUPPORTED]
    assert_not_proxied(squid, squid_log, "localhost", server.tls_port)


HOSTILE_TO_A_PROXIED_CHANNEL = {
    "no_proxy-star": {"no_proxy": "*", "no_grpc_proxy": "*", "NO_PROXY": "*"},
    "no_proxy-localhost": {"no_proxy": "localhost", "no_grpc_proxy": "localhost,127.0.0.1"},
    "grpc_proxy-https": {"grpc_proxy": "https://localhost:9", "https_proxy": "https://localhost:9"},
    "grpc_proxy-dead": {"grpc_proxy": DEAD_PROXY, "http_proxy": DEAD_PROXY},
}


@pytest.mark.integration
@pytest.mark.parametrize("hostile", HOSTILE_TO_A_PROXIED_CHANNEL)
@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_hostile_environment_does_not_change_a_proxied_channel(
    monkeypatch: pytest.MonkeyPatch,
    pki: PKI,
    squid: Squid,
    squid_log: SquidLog,
    server: GrpcServer,
    hostile: str,
    tls: bool,
) -> None:
    for name, value in HOSTILE_TO_A_PROXIED_CHANNEL[hostile].items():
        monkeypatch.setenv(name, value)
    config = config_of(grpc_proxy=squid.http_url, NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path))
    port = server.tls_port if tls else server.port
    make = adapter.secure_channel if tls else adapter.insecure_channel
    with make(config, f"localhost:{port}") as channel:
        assert health_check(channel) == SERVING
    assert squid_log.wait_for_host("localhost", method="CONNECT").port == port


@pytest.mark.integration
@pytest.mark.parametrize("variable", ["grpc_proxy", "https_proxy", "http_proxy"])
@pytest.mark.parametrize("value", [DEAD_PROXY, "https://localhost:9"])
def test_hostile_proxy_in_the_environment_does_not_proxy_a_direct_channel(
    monkeypatch: pytest.MonkeyPatch, server: GrpcServer, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    # Nothing listens on the environment's proxy: if gRPC used it, the call would fail.
    for config in (ProxyConfig.direct(), config_of(grpc_proxy=DEAD_PROXY, no_proxy="localhost")):
        with adapter.insecure_channel(config, f"localhost:{server.port}") as channel:
            assert health_check(channel) == SERVING


@pytest.mark.integration
def test_channel_options_alone_are_overridden_by_the_environment_no_proxy(
    monkeypatch: pytest.MonkeyPatch, squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    """The measured gRPC trap the channel constructors exist for (documented in docs).

    If a grpcio release stops applying ``no_proxy`` to ``grpc.http_proxy``, this test fails:
    then the docs' warning on ``channel_options`` can be relaxed.
    """
    monkeypatch.setenv("no_proxy", "localhost")
    config = config_of(grpc_proxy=squid.http_url)
    options = adapter.channel_options(config, f"localhost:{server.port}")
    assert options == [("grpc.http_proxy", squid.http_url)]
    with grpc.insecure_channel(f"localhost:{server.port}", options=options) as channel:
        assert health_check(channel) == SERVING
    assert_not_proxied(squid, squid_log, "localhost", server.port)


@pytest.mark.integration
def test_aio_channels_go_through_squid(
    pki: PKI, squid: Squid, squid_log: SquidLog, server: GrpcServer
) -> None:
    config = config_of(grpc_proxy=squid.http_url, NODE_EXTRA_CA_CERTS=str(pki.origin_ca_path))

    async def main() -> tuple[bytes, bytes]:
        async with adapter.aio_insecure_channel(config, f"{API_HOST}:{server.port}") as plain:
            first = await health_check_async(plain)
        async with adapter.aio_secure_channel(config, f"{API_HOST}:{server.tls_port}") as tls:
            second = await health_check_async(tls)
        return first, second

    assert asyncio.run(main()) == (SERVING, SERVING)
    squid_log.wait_for(lambda e: e.host == API_HOST and e.port == server.port)
    squid_log.wait_for(lambda e: e.host == API_HOST and e.port == server.tls_port)
