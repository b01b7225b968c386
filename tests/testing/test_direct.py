"""DirectGuard: names the process resolves itself are recorded, mapped or refused."""

from __future__ import annotations

import asyncio
import doctest
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from carto_proxy.testing import DirectGuard
from carto_proxy.testing import _direct as direct_module


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback listener: connections complete in its backlog, nobody needs to accept()."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def test_mapped_name_resolves_with_its_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    # The requested port (443) is replaced: the connection lands on the local server.
    with (
        DirectGuard({"api.example.com": ("127.0.0.1", port)}) as guard,
        socket.create_connection(("api.example.com", 443), timeout=5) as conn,
    ):
        assert conn.getpeername() == ("127.0.0.1", port)
    assert guard.resolved == ["api.example.com"]
    assert guard.went_direct("API.example.com.")
    assert guard.blocked == []


def test_unmapped_name_is_refused_with_the_host_in_the_message() -> None:
    with DirectGuard(hint="do something") as guard, pytest.raises(socket.gaierror) as caught:
        socket.create_connection(("files.example.com", 443), timeout=5)
    message = str(caught.value)
    assert "carto_proxy: files.example.com went direct" in message
    assert "(do something)" in message
    assert guard.blocked == ["files.example.com"]


def test_literals_and_localhost_pass_unrecorded(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with DirectGuard() as guard:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert socket.getaddrinfo("localhost", 80)
        assert socket.getaddrinfo("::1", 80, socket.AF_INET6)
        assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert guard.resolved == []


def test_without_block_names_reach_the_previous_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with DirectGuard(block=False) as guard:
        assert socket.getaddrinfo("real.example", 443)[0][4] == ("192.0.2.7", 443)
    assert asked == ["real.example"]
    assert guard.resolved == ["real.example"]
    assert guard.blocked == []
    assert socket.getaddrinfo is fake  # the previous resolver is put back


def test_gethostbyname_and_bytes_are_covered() -> None:
    with DirectGuard({"db.internal": "127.0.0.1"}) as guard:
        assert socket.gethostbyname("db.internal") == "127.0.0.1"
        with pytest.raises(socket.gaierror):
            socket.gethostbyname("other.example")
        assert socket.getaddrinfo(b"db.internal", 5432)[0][4] == ("127.0.0.1", 5432)
    assert guard.resolved == ["db.internal", "other.example", "db.internal"]


def test_asyncio_resolution_goes_through_the_guard() -> None:
    async def resolve() -> Any:
        return await asyncio.get_running_loop().getaddrinfo("api.example.com", 443)

    with DirectGuard(block=True) as guard, pytest.raises(socket.gaierror, match="went direct"):
        asyncio.run(resolve())
    assert guard.blocked == ["api.example.com"]


def test_add_clear_and_restore() -> None:
    original = socket.getaddrinfo
    guard = DirectGuard()
    with guard:
        guard.add("late.example")
        assert socket.getaddrinfo("late.example", 80)[0][4][0] == "127.0.0.1"
        with pytest.raises(RuntimeError, match="already active"):
            guard.__enter__()
        guard.clear()
        assert guard.resolved == []
    assert socket.getaddrinfo is original
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        guard.add("x.example", "not-an-ip")


def test_docstring_example_runs() -> None:
    result = doctest.testmod(direct_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
