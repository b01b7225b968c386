"""RecordingProxy's HTTP/1.1 framing (h11): smuggling attempts, lenient heads, bodies, HEAD.

Each smuggling test hides a ``CONNECT`` to the echo server in what one reading of the first
request calls its body: the proxy must answer ``400``, close the connection, and never run
(or record) the hidden request.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from carto_proxy.testing import LocalOrigin
from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import (
    _echo,
    _get,
    _one,
    _proxy_socket,
    _read_head,
    _recv_all,
    _recv_exact,
)


def _hidden(echo_port: int) -> bytes:
    return f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _smuggling(http_origin: int, echo_port: int) -> dict[str, bytes]:
    """Requests whose framing is in doubt, each hiding a CONNECT in its (maybe) body."""
    hidden = _hidden(echo_port)
    start = f"POST http://127.0.0.1:{http_origin}/post HTTP/1.1\r\nHost: x\r\n".encode()
    chunked_then_hidden = b"0\r\n\r\n" + hidden
    return {
        # issue 15 B2: int() refuses more than 4,300 digits; the old parser kept the connection.
        "4301-digit Content-Length": start
        + b"Content-Length: 1"
        + b"0" * 4300
        + b"\r\n\r\n"
        + hidden,
        # issue 16: RFC 9112 §6.3, a framing error, whichever header a front end believes.
        "Transfer-Encoding and Content-Length": start
        + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked_then_hidden)
        + chunked_then_hidden,
        "Content-Length and Transfer-Encoding": start
        + b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(chunked_then_hidden)
        + chunked_then_hidden,
        "two Content-Lengths": start
        + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(hidden)
        + hidden,
        "signed Content-Length": start + b"Content-Length: +%d\r\n\r\n" % len(hidden) + hidden,
        "Transfer-Encoding not only chunked": start
        + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
        + chunked_then_hidden,
        "chunk size not hex": start + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + hidden,
        "chunk size overflowing": start
        + b"Transfer-Encoding: chunked\r\n\r\n1"
        + b"0" * 40
        + b"\r\n"
        + hidden,
        # h11 before 0.16 took any two bytes as a chunk's CRLF (CVE-2025-43859).
        "chunk data not ended by CRLF": start
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX"
        + hidden,
        "a header line without a colon": start + b"Content-Length 5\r\n\r\n" + hidden,
    }


SMUGGLING = list(_smuggling(0, 0))


@pytest.mark.parametrize("name", SMUGGLING)
def test_a_request_with_doubtful_framing_is_answered_400_and_closed(
    name: str, proxy: RecordingProxy, http_origin: int, echo_port: int
) -> None:
    attack = _smuggling(http_origin, echo_port)[name]
    with _proxy_socket(proxy) as sock:
        sock.sendall(attack)
        head, rest = _read_head(sock)
        # Everything after the 400 is its body, then the end of the stream: nothing more runs.
        body = rest + _recv_all(sock)
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"connection: close" in head.lower()
    assert b"200" not in body
    assert len(body) < 200  # the error does not echo the attack back
    records = proxy.records
    assert [record for record in records if record.method == "CONNECT"] == []
    assert {record.status for record in records} <= {400}


def test_a_pipelined_connect_after_a_well_framed_body_runs(
    proxy: RecordingProxy, http_origin: int, echo_port: int
) -> None:
    """The control for the smuggling tests: the same CONNECT, framed plainly, does run."""
    request = (
        f"POST http://127.0.0.1:{http_origin}/post HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ).encode()
    with _proxy_socket(proxy) as sock:
        sock.sendall(request + _hidden(echo_port))
        # Both answers may come in one read: the body, then the tunnel's 200.
        expected = b"got abc" + b"HTTP/1.1 200 Connection established\r\n\r\n"
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert _recv_exact(sock, len(expected), rest) == expected
        assert _echo(sock, b"after") == b"after"
    records = proxy.wait_for(2)
    assert [(record.method, record.status, record.bytes_up) for record in records] == [
        ("POST", 200, 3),
        ("CONNECT", 200, 5),
    ]


def test_a_body_cut_short_is_a_400_on_its_record(proxy: RecordingProxy, http_origin: int) -> None:
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"POST http://127.0.0.1:{http_origin}/post HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nab".encode()
        )
        sock.shutdown(socket.SHUT_WR)
        head, _ = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 400 ")
    record = _one(proxy.wait_for(1))
    assert (record.method, record.path, record.status) == ("POST", "/post", 400)
    assert record.error is not None


def test_too_many_header_fields_are_refused(proxy: RecordingProxy, http_origin: int) -> None:
    fields = "".join(f"X-{index}: {index}\r\n" for index in range(101))
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"GET http://127.0.0.1:{http_origin}/ HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode()
        )
        head, rest = _read_head(sock)
        assert b"more than 100 header fields" in rest + _recv_all(sock)
    assert head.startswith(b"HTTP/1.1 400 ")


def test_a_head_over_64_kib_is_refused(proxy: RecordingProxy, http_origin: int) -> None:
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"GET http://127.0.0.1:{http_origin}/ HTTP/1.1\r\nX-Big: {'a' * 70000}\r\n\r\n".encode()
        )
        head, _ = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 400 ")
    assert proxy.records == []


# --- leniency kept from the hand-written parser -------------------------------------------------


def test_connect_without_host_and_empty_lines_before_requests(
    proxy: RecordingProxy, http_origin: int, echo_port: int
) -> None:
    """RFC 9112 §2.2 lets a server skip empty lines; CONNECT without Host is common."""
    with _proxy_socket(proxy) as sock:
        sock.sendall(f"\r\n\r\nGET http://127.0.0.1:{http_origin}/a HTTP/1.1\r\n\r\n".encode())
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert _recv_exact(sock, len(b"hello /a"), rest) == b"hello /a"
        assert b"X-Seen-Host: 127.0.0.1:%d" % http_origin in head
        sock.sendall(b"\r\n" + f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\nearly".encode())
        head, rest = _read_head(sock)
        assert head == b"HTTP/1.1 200 Connection established"
        assert _recv_exact(sock, 5, rest) == b"early"
    records = proxy.wait_for(2)
    assert [(record.method, record.status) for record in records] == [
        ("GET", 200),
        ("CONNECT", 200),
    ]


def test_two_host_fields_are_still_refused(proxy: RecordingProxy, echo_port: int) -> None:
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".encode()
        )
        head, rest = _read_head(sock)
        body = rest + _recv_all(sock)
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Host" in body
    assert proxy.records == []


def test_expect_100_continue_is_answered_by_the_proxy(
    proxy: RecordingProxy, http_origin: int
) -> None:
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"POST http://127.0.0.1:{http_origin}/post HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim, rest = _read_head(sock)
        assert (interim, rest) == (b"HTTP/1.1 100 Continue", b"")
        sock.sendall(b"abc")
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert _recv_exact(sock, len(b"got abc"), rest) == b"got abc"
    assert _one(proxy.wait_for(1)).bytes_up == 3


# --- responses ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_origin() -> Iterator[LocalOrigin]:
    with LocalOrigin() as origin:
        yield origin


def test_head_keeps_the_length_and_the_connection(
    proxy: RecordingProxy, local_origin: LocalOrigin
) -> None:
    local_origin.reply("/sized", body=b"0123456789")
    url = f"http://127.0.0.1:{local_origin.port}/sized"
    with _proxy_socket(proxy) as sock:
        sock.sendall(f"HEAD {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Length: 10" in head
        assert rest == b""
        # No body followed the HEAD answer: the next response is read in step.
        assert _get(sock, url) == (200, b"0123456789")
    assert [record.method for record in proxy.wait_for(2)] == ["HEAD", "GET"]


def test_no_content_and_an_upstream_that_hangs_up(
    proxy: RecordingProxy, local_origin: LocalOrigin
) -> None:
    local_origin.reply("/empty", status=204)
    with _proxy_socket(proxy) as sock:
        sock.sendall(
            f"GET http://127.0.0.1:{local_origin.port}/empty HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 204 ")
        assert rest == b""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with _proxy_socket(proxy) as sock:
            port = silent.getsockname()[1]
            sock.sendall(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            conn, _ = silent.accept()
            with conn:
                assert conn.recv(65536).startswith(b"GET / HTTP/1.1\r\n")
            # It hung up without answering.
            head, rest = _read_head(sock)
            assert head.startswith(b"HTTP/1.1 502 ")
            assert b"without a response" in rest
    records = proxy.wait_for(2)
    assert [record.status for record in records] == [204, 502]
