"""LocalOrigin never takes what is left of a body for the next request (issue 15's smuggling)."""

from __future__ import annotations

import socket

import pytest

from carto_proxy.testing import LocalOrigin

HIDDEN = b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"


def exchange(origin: LocalOrigin, data: bytes) -> bytes:
    with socket.create_connection(origin.address, timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):  # the origin closes a connection in doubt
            received += chunk
        return received


@pytest.mark.parametrize(
    "head",
    [
        # over the origin's 1 MiB body limit: the rest is not read, so the connection ends
        b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * 1024 * 1024),
        # both framings: RFC 9112 §6.3 says it must be handled as an error
        b"POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
    ],
)
def test_a_body_in_doubt_ends_the_connection(head: bytes) -> None:
    with LocalOrigin() as origin:
        body = b"x" * (1024 * 1024) + HIDDEN if b"/big" in head else b"0\r\n\r\n" + HIDDEN
        received = exchange(origin, head + body)
        assert received.startswith(b"HTTP/1.1 200")
        assert [request.path for request in origin.requests if request.path == "/hidden"] == []


def test_a_chunked_body_is_read_whole_and_the_connection_kept() -> None:
    with LocalOrigin() as origin:
        chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += (
            b"5\r\nhello\r\n0\r\n\r\n"
            + b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        exchange(origin, chunked)
        assert [(r.path, r.body) for r in origin.requests] == [("/c", b"hello"), ("/next", b"")]
