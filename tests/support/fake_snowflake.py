"""A fake Snowflake endpoint on 127.0.0.1: enough of the REST protocol for a driver to log in.

Both driver lines (4.x classic, 5.x universal) log in with ``POST /session/v1/login-request``,
may run a query with ``POST /queries/v1/query-request`` and log out with
``POST /session?delete=true``; every other path gets a plain success, so telemetry and
heartbeats do not fail. Built on :class:`tests.support.origins.FakeHTTPServer`.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from typing import Any, Final

from tests.support.origins import FakeHTTPServer, Request, Response, route

LOGIN_PATH: Final = "/session/v1/login-request"
QUERY_PATH: Final = "/queries/v1/query-request"
ACCOUNT: Final = "testacct"
USER: Final = "carto"
PASSWORD: Final = "not-a-secret"  # checked by the fake login


def _login(request: Request, match: re.Match[str]) -> Response:
    data = (request.json() or {}).get("data", {})
    if data.get("LOGIN_NAME") != USER or data.get("PASSWORD") != PASSWORD:
        return Response({"success": False, "code": "390100", "message": "Incorrect username"})
    return Response(
        {
            "success": True,
            "data": {
                "token": "session-token",
                "masterToken": "master-token",
                "validityInSeconds": 3600,
                "masterValidityInSeconds": 14400,
                "sessionId": 1,
                "parameters": [],
                "sessionInfo": {
                    "databaseName": None,
                    "schemaName": None,
                    "warehouseName": None,
                    "roleName": "PUBLIC",
                },
            },
        }
    )


def _query(request: Request, match: re.Match[str]) -> Response:
    """Any query answers one row, ``(1,)``, in the JSON result format."""
    column = {
        "name": "1",
        "type": "fixed",
        "length": None,
        "precision": 1,
        "scale": 0,
        "nullable": False,
        "byteLength": None,
        "collation": None,
        "database": "",
        "schema": "",
        "table": "",
    }
    data: dict[str, Any] = {
        "parameters": [],
        "rowtype": [column],
        "rowset": [["1"]],
        "total": 1,
        "returned": 1,
        "queryId": "01-fake-query",
        "queryResultFormat": "json",
        "statementTypeId": 4096,
    }
    return Response({"success": True, "code": None, "message": None, "data": data})


def _anything(request: Request, match: re.Match[str]) -> Response:
    return Response({"success": True, "code": None, "message": None, "data": {}})


def start_fake_snowflake(*, ca: Any = None) -> FakeHTTPServer:
    """Start a fake Snowflake (``https`` signed by *ca*, else ``http``); stop it yourself."""
    routes = [
        route("POST", re.escape(LOGIN_PATH), _login),
        route("POST", re.escape(QUERY_PATH), _query),
        route("POST", r"/.*", _anything),
        route("GET", r"/.*", _anything),
    ]
    return FakeHTTPServer(routes, ca=ca, name="fake-snowflake").start()


class LoopbackOnly:
    """Context manager: Python sockets may connect to loopback addresses and Unix sockets only.

    A connection elsewhere raises ``OSError(ENETUNREACH)`` and is recorded in :attr:`refused`.
    It guards what runs in Python (the 4.x driver's vendored urllib3, Google's libraries); a
    native client such as the 5.x driver's Rust core needs a loopback-only network namespace.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._original: Any = None

    def __enter__(self) -> LoopbackOnly:
        original = self._original = socket.socket.connect
        refused = self.refused

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                refused.append(str(address[0]))
                raise OSError(errno.ENETUNREACH, f"test guard: {address[0]} is not loopback")
            original(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        socket.socket.connect = self._original  # type: ignore[method-assign]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name: sockets connect to addresses, so this is unexpected
