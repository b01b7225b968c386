"""A fake Snowflake endpoint on 127.0.0.1: enough of the REST protocol for a driver to log in.

Both driver lines (4.x classic, 5.x universal) log in with ``POST /session/v1/login-request``,
may run a query with ``POST /queries/v1/query-request`` and log out with
``POST /session?delete=true``; every other path gets a plain success, so telemetry and
heartbeats do not fail. Built on :class:`tests.support.origins.FakeHTTPServer`.
"""

from __future__ import annotations

import base64
import errno
import gzip
import io
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


_COLUMN: Final = {
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


def _json_result(rowtype: list[dict[str, Any]], rowset: list[list[str]]) -> Response:
    data: dict[str, Any] = {
        "parameters": [],
        "rowtype": rowtype,
        "rowset": rowset,
        "total": len(rowset),
        "returned": len(rowset),
        "queryId": "01-fake-query",
        "queryResultFormat": "json",
        "statementTypeId": 4096,
    }
    return Response({"success": True, "code": None, "message": None, "data": data})


def _query(request: Request, match: re.Match[str]) -> Response:
    """Any query answers one row, ``(1,)``, in the JSON result format."""
    return _json_result([_COLUMN], [["1"]])


def _session_facts(sql: str) -> Response:
    """``select current_version()`` or ``select current_database(), current_schema()``."""
    names = re.findall(r"current_\w+\(\)", sql)
    facts = {"current_version()": "9.1.0", "current_database()": "DB"}
    text = _COLUMN | {"type": "text", "nullable": True}
    rowtype = [text | {"name": name.upper()} for name in names]
    return _json_result(rowtype, [[facts.get(name, "PUBLIC") for name in names]])


def _anything(request: Request, match: re.Match[str]) -> Response:
    return Response({"success": True, "code": None, "message": None, "data": {}})


ARROW_ROWS: Final = ((1,), (2,))
"""The rows of an Arrow query's first chunk, sent inline with the query response."""
CHUNK_ROWS: Final = ((3,), (4,))
"""The rows of its second chunk, downloaded from the chunk URL."""


def arrow_chunk(values: tuple[int, ...]) -> bytes:
    """An Arrow IPC stream of one ``NUMBER(38,0)`` column ``N``, as Snowflake sends results."""
    import pyarrow

    metadata = {"logicalType": "FIXED", "precision": "38", "scale": "0", "physicalType": "SB8"}
    field = pyarrow.field("N", pyarrow.int64(), nullable=False, metadata=metadata)
    table = pyarrow.table({"N": pyarrow.array(values, pyarrow.int64())}, pyarrow.schema([field]))
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def gzipped_chunk() -> bytes:
    """The second chunk's bytes as cloud storage serves them (gzip)."""
    return gzip.compress(arrow_chunk(tuple(n for (n,) in CHUNK_ROWS)))


def _arrow_query(chunk_url: str) -> Any:
    column = {"name": "N", "type": "fixed", "precision": 38, "scale": 0, "nullable": False}
    rowset = base64.b64encode(arrow_chunk(tuple(n for (n,) in ARROW_ROWS))).decode()
    chunk = {"url": chunk_url, "rowCount": len(CHUNK_ROWS), "uncompressedSize": 100}

    def answer(request: Request, match: re.Match[str]) -> Response:
        sql = str((request.json() or {}).get("sqlText", "")).lower()
        if "current_" in sql:  # what snowflake-sqlalchemy asks when it connects
            return _session_facts(sql)
        data: dict[str, Any] = {
            "parameters": [],
            "rowtype": [column | {"length": None, "byteLength": None, "collation": None}],
            "rowsetBase64": rowset,
            "total": len(ARROW_ROWS) + len(CHUNK_ROWS),
            "returned": len(ARROW_ROWS) + len(CHUNK_ROWS),
            "queryId": "01-fake-arrow-query",
            "queryResultFormat": "arrow",
            "statementTypeId": 4096,
            "chunks": [chunk | {"compressedSize": 80}],
            "chunkHeaders": {"x-amz-server-side-encryption-customer-algorithm": "AES256"},
        }
        return Response({"success": True, "code": None, "message": None, "data": data})

    return answer


def start_fake_snowflake(*, ca: Any = None, chunk_url: str | None = None) -> FakeHTTPServer:
    """Start a fake Snowflake (``https`` signed by *ca*, else ``http``); stop it yourself.

    With *chunk_url*, every query answers in the Arrow format: :data:`ARROW_ROWS` inline and
    :data:`CHUNK_ROWS` in a remote chunk at *chunk_url* (serve :func:`gzipped_chunk` there).
    """
    query = _query if chunk_url is None else _arrow_query(chunk_url)
    routes = [
        route("POST", re.escape(LOGIN_PATH), _login),
        route("POST", re.escape(QUERY_PATH), query),
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
