"""GrpcOrigin answers raw-bytes and typed gRPC calls, plaintext and TLS, and records each one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carto_proxy import ProxyConfig
from carto_proxy.testing import GrpcCall, GrpcOrigin, RecordingProxy

grpc = pytest.importorskip("grpc")
trustme = pytest.importorskip("trustme")

PING = "/carto_proxy.test.Demo/Ping"
UPPER = "/carto_proxy.test.Demo/Upper"


@pytest.fixture(scope="module")
def origin() -> Iterator[GrpcOrigin]:
    with GrpcOrigin(names=["api.example.com"]) as server:
        server.reply(PING, b"pong")
        server.reply(UPPER, lambda request: request.upper())
        yield server


def tls_channel(origin: GrpcOrigin, name: str = "localhost") -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=origin.ca_pem.encode())
    options = [("grpc.ssl_target_name_override", name)]
    return grpc.secure_channel(f"127.0.0.1:{origin.tls_port}", credentials, options=options)


def test_plaintext_and_tls_calls_are_answered_and_recorded(origin: GrpcOrigin) -> None:
    origin.clear()
    with grpc.insecure_channel(f"127.0.0.1:{origin.port}") as channel:
        ping = channel.unary_unary(PING)
        assert ping(b"", timeout=5, metadata=[("x-request", "1")]) == b"pong"
    with tls_channel(origin, "api.example.com") as channel:
        assert channel.unary_unary(UPPER)(b"carto", timeout=5) == b"CARTO"
    first, second = origin.calls
    assert (first.method, first.metadata["x-request"]) == (PING, "1")
    assert second.method == UPPER


def test_an_unknown_method_is_unimplemented_but_recorded(origin: GrpcOrigin) -> None:
    origin.clear()
    with (
        grpc.insecure_channel(f"127.0.0.1:{origin.port}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        channel.unary_unary("/nobody.Home/Call")(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert [call.method for call in origin.calls] == ["/nobody.Home/Call"]


def test_a_client_that_does_not_trust_its_ca_is_refused(origin: GrpcOrigin) -> None:
    other = trustme.CA()
    credentials = grpc.ssl_channel_credentials(root_certificates=other.cert_pem.bytes())
    with (
        grpc.secure_channel(f"localhost:{origin.tls_port}", credentials) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        channel.unary_unary(PING)(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_typed_handlers_and_a_shared_ca() -> None:
    ca = trustme.CA()

    def reverse(request: bytes, context: object) -> bytes:
        return request[::-1]

    handler = grpc.method_handlers_generic_handler(
        "carto_proxy.test.Typed", {"Reverse": grpc.unary_unary_rpc_method_handler(reverse)}
    )
    with GrpcOrigin(ca=ca, handlers=[handler]) as origin:
        assert origin.ca_pem == ca.cert_pem.bytes().decode()
        with tls_channel(origin) as channel:
            method = channel.unary_unary("/carto_proxy.test.Typed/Reverse")
            assert method(b"abc", timeout=5) == b"cba"
        (call,) = origin.calls
    assert isinstance(call, GrpcCall)
    assert call.method == "/carto_proxy.test.Typed/Reverse"
    assert call.metadata["user-agent"].startswith("grpc-python/")


def test_reached_through_a_recording_proxy_by_the_grpc_adapter(
    origin: GrpcOrigin, tmp_path: Path
) -> None:
    adapter = pytest.importorskip("carto_proxy.adapters.grpc")
    origin.clear()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(origin.ca_pem)
    upstreams = {"api.example.com": (origin.host, origin.tls_port)}
    with RecordingProxy(upstreams=upstreams) as proxy:
        config = ProxyConfig.from_env(
            environ={"grpc_proxy": proxy.url, "NODE_EXTRA_CA_CERTS": str(ca_file)}
        )
        target = f"api.example.com:{origin.tls_port}"
        with adapter.secure_channel(config, target) as channel:
            assert channel.unary_unary(PING)(b"", timeout=5) == b"pong"
        (record,) = proxy.records
    assert (record.method, record.authority) == ("CONNECT", target)
    assert [call.method for call in origin.calls] == [PING]


def test_stop_is_prompt_and_an_origin_runs_once() -> None:
    origin = GrpcOrigin().start()
    with pytest.raises(RuntimeError, match="runs once"):
        origin.start()
    started = time.monotonic()
    origin.stop()
    assert time.monotonic() - started < 1.0
    origin.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = GrpcOrigin().port
