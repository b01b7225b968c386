"""What no audit judges: the testing kit's threads, and the local servers a guard maps names to."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from carto_proxy import ProxyConfig, Violation, audit
from carto_proxy._unaudited import exempt_address, unaudited

# Everything is proxied, loopback included: each connection below would be a violation.
CONFIG = ProxyConfig.from_env(
    environ={"HTTP_PROXY": "http://127.0.0.1:3128", "HTTPS_PROXY": "http://127.0.0.1:3128"}
)
TIMEOUT = 5.0


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    """A loopback listener: connections complete in its backlog, nobody needs to accept()."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[:2]


def connect(address: tuple[str, int]) -> None:
    socket.create_connection(address, timeout=TIMEOUT).close()


def test_a_thread_inside_unaudited_is_not_judged(listener: tuple[str, int]) -> None:
    seen: list[Violation] = []
    with audit(CONFIG, on_violation=seen.append):
        with unaudited():
            connect(listener)
            with unaudited():  # nested: leaving the inner one keeps the outer's
                pass
            connect(listener)
        assert seen == []
        worker = threading.Thread(target=connect, args=(listener,))  # its own thread: judged
        with unaudited():
            worker.start()
            worker.join(TIMEOUT)
        connect(listener)  # out of it again: judged
    assert [v.kind for v in seen] == ["connect", "connect"]


def test_connections_to_an_exempt_address_are_not_judged(listener: tuple[str, int]) -> None:
    seen: list[Violation] = []
    with audit(CONFIG, on_violation=seen.append):
        with exempt_address(*listener):
            with exempt_address(*listener):  # held twice: the first release keeps it
                connect(listener)
            connect(listener)
        assert seen == []
        connect(listener)
    assert [(v.host, v.port) for v in seen] == [listener]


def test_an_exempt_address_is_an_ip_address() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        exempt_address("localhost", 80).__enter__()
