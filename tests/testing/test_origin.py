"""LocalOrigin answers any name over HTTP and HTTPS on one port, directly or through a proxy."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from carto_proxy.testing import LocalOrigin, OriginRequest, RecordingProxy
from tests.support.polling import first_match


@pytest.fixture(scope="module")
def origin() -> Iterator[LocalOrigin]:
    with LocalOrigin() as server:
        yield server


@pytest.fixture
def trusting(origin: LocalOrigin) -> ssl.SSLContext:
    origin.clear()
    return ssl.create_default_context(cadata=origin.ca_pem)


def get(sock: socket.socket, host: str, path: str = "/") -> dict[str, object]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    answer: dict[str, object] = json.loads(body)
    return answer


def test_https_certificate_is_made_for_the_name_asked(
    origin: LocalOrigin, trusting: ssl.SSLContext
) -> None:
    for name in ("api.example.com", "xy12345.eu-central-1.snowflakecomputing.com"):
        with (
            socket.create_connection(origin.address, timeout=5) as raw,
            trusting.wrap_socket(raw, server_hostname=name) as tls,
        ):
            answer = get(tls, name, "/v1?x=1")
        assert answer == {
            "method": "GET",
            "path": "/v1?x=1",
            "host": name,
            "tls": True,
            "server_name": name,
        }
    assert [r.server_name for r in origin.requests] == [
        "api.example.com",
        "xy12345.eu-central-1.snowflakecomputing.com",
    ]


def test_untrusting_client_refuses_it(origin: LocalOrigin) -> None:
    # The certificates come from the origin's own CA: nobody trusts them by accident.
    context = ssl.create_default_context()
    with (
        socket.create_connection(origin.address, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="api.example.com")


def test_plain_http_on_the_same_port(origin: LocalOrigin) -> None:
    origin.clear()
    with socket.create_connection(origin.address, timeout=5) as sock:
        answer = get(sock, "plain.example", "/p")
    assert answer["tls"] is False
    (request,) = origin.requests
    assert (request.method, request.path, request.host, request.tls) == (
        "GET",
        "/p",
        "plain.example",
        False,
    )


def test_ip_literal_without_sni_gets_the_loopback_certificate(
    origin: LocalOrigin, trusting: ssl.SSLContext
) -> None:
    with urllib3.PoolManager(ssl_context=trusting) as pool:
        response = pool.request("POST", f"{origin.url}data", body=b"payload", retries=False)
        assert json.loads(response.data)["server_name"] == "localhost"
        response = pool.request(
            "GET", f"https://127.0.0.1:{origin.port}/ip", retries=False, timeout=5
        )
    assert json.loads(response.data)["server_name"] is None
    assert origin.requests[0].body == b"payload"


def test_reached_through_a_recording_proxy(origin: LocalOrigin, trusting: ssl.SSLContext) -> None:
    upstreams = origin.upstreams("api.example.com", ["files.example.com"])
    assert upstreams == {"api.example.com": origin.address, "files.example.com": origin.address}
    with (
        RecordingProxy(upstreams=upstreams) as proxy,
        urllib3.ProxyManager(proxy.url, ssl_context=trusting) as pool,
    ):
        tunnelled = pool.request("GET", "https://api.example.com/t", retries=False, timeout=5)
        forwarded = pool.request("GET", "http://files.example.com/f", retries=False, timeout=5)
    assert json.loads(tunnelled.data)["server_name"] == "api.example.com"
    assert json.loads(forwarded.data) == {
        "method": "GET",
        "path": "/f",
        "host": "files.example.com",
        "tls": False,
        "server_name": None,
    }


def test_stop_is_prompt_with_idle_and_silent_connections() -> None:
    origin = LocalOrigin().start()
    ca_file, port = origin.ca_file, origin.port
    assert os.path.exists(ca_file)
    idle = socket.create_connection(origin.address, timeout=5)  # never sends a byte
    keep_alive = socket.create_connection(origin.address, timeout=5)
    keep_alive.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert keep_alive.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    origin.stop()
    assert time.monotonic() - started < 1.0
    assert not os.path.exists(ca_file)
    assert not [t for t in threading.enumerate() if t.name.startswith(f"LocalOrigin-accept:{port}")]
    idle.close()
    keep_alive.close()
    origin.stop()  # idempotent
    with pytest.raises(RuntimeError, match="runs once"):
        origin.start()
    with pytest.raises(RuntimeError, match="only while"):
        _ = origin.ca_file


def test_replies_per_path_until_cleared(origin: LocalOrigin, trusting: ssl.SSLContext) -> None:
    origin.reply("/v1/geocode", json={"lat": 40.4, "lon": -3.7})
    origin.reply("/old", status=301, headers={"Location": "/new"})
    origin.reply("/text", status=503, body="down for maintenance")
    with urllib3.PoolManager(ssl_context=trusting) as pool:
        geocode = pool.request("GET", f"{origin.url}v1/geocode?q=Madrid", retries=False)
        moved = pool.request("GET", f"{origin.url}old", retries=False, redirect=False)
        text = pool.request("GET", f"{origin.url}text", retries=False)
        echo = pool.request("GET", f"{origin.url}v1/other", retries=False)
        origin.clear()
        after = pool.request("GET", f"{origin.url}v1/geocode", retries=False)
    assert (geocode.status, json.loads(geocode.data)) == (200, {"lat": 40.4, "lon": -3.7})
    assert geocode.headers["Content-Type"] == "application/json"
    assert (moved.status, moved.headers["Location"]) == (301, "/new")
    assert (text.status, text.data) == (503, b"down for maintenance")
    assert json.loads(echo.data)["path"] == "/v1/other"
    assert json.loads(after.data)["path"] == "/v1/geocode"  # the reply went with clear()


def test_a_handler_answers_first_until_cleared(
    origin: LocalOrigin, trusting: ssl.SSLContext
) -> None:
    def handler(request: OriginRequest) -> tuple[int, dict[str, str], bytes] | None:
        if request.path.startswith("/boom"):
            raise RuntimeError("a bug in the test's handler")
        if request.method != "POST":
            return None  # left to reply() and the echo
        return 201, {"X-Seen": request.headers["x-token"]}, request.body.upper()

    origin.reply("/kept", json={"from": "reply"})
    origin.respond_with(handler)
    with urllib3.PoolManager(ssl_context=trusting) as pool:
        created = pool.request(
            "POST", f"{origin.url}v1/items", body=b"abc", headers={"X-Token": "t1"}, retries=False
        )
        kept = pool.request("GET", f"{origin.url}kept", retries=False)
        echoed = pool.request("GET", f"{origin.url}other", retries=False)
        broken = pool.request("GET", f"{origin.url}boom", retries=False)
        assert origin.requests[0].headers["x-token"] == "t1"
        origin.clear()
        after = pool.request("POST", f"{origin.url}v1/items", body=b"abc", retries=False)
    assert (created.status, created.headers["X-Seen"], created.data) == (201, "t1", b"ABC")
    assert json.loads(kept.data) == {"from": "reply"}
    assert json.loads(echoed.data)["path"] == "/other"
    assert (broken.status, broken.data) == (500, b"RuntimeError: a bug in the test's handler")
    assert after.status == 200  # the handler went with clear()


def test_chunked_bodies_are_read_whole_and_the_connection_kept(origin: LocalOrigin) -> None:
    origin.clear()
    with socket.create_connection(origin.address, timeout=5) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        first = http.client.HTTPResponse(sock)
        first.begin()
        assert (first.status, json.loads(first.read())["path"]) == (200, "/upload")
        answer = get(sock, "x", "/after")  # the same connection still works
    assert answer["path"] == "/after"
    assert [r.body for r in origin.requests] == [b"abcdefg", b""]


def test_a_given_ca_signs_the_certificates_and_refusals_are_recorded() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    with LocalOrigin(ca=ca) as origin:
        assert origin.ca_pem == ca.cert_pem.bytes().decode()
        with urllib3.PoolManager(ssl_context=context) as pool:
            answer = pool.request("GET", f"https://127.0.0.1:{origin.port}/", retries=False)
        assert answer.status == 200
        assert origin.errors == []
        with (
            socket.create_connection(origin.address, timeout=5) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            ssl.create_default_context().wrap_socket(raw, server_hostname="api.example.com")
        # The server's side of the failed handshake ends on its own thread.
        first_match(
            lambda: origin.errors,
            lambda error: isinstance(error, ssl.SSLError),
            5.0,
            failure=lambda: f"no TLS error recorded: {origin.errors}",
        )
