"""A fake BigQuery REST API and OAuth token endpoint on 127.0.0.1, plain or TLS.

:class:`FakeHTTPServer` is a small JSON server that records every request (``fake_snowflake``
builds on it too); :func:`bigquery_routes` answers the few BigQuery v2 calls the tests make
(``datasets.list``, ``jobs.query`` with REST paging, ``jobs.getQueryResults``) and
:func:`token_routes` a Google OAuth token endpoint (``POST /token``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from tests.support.names import LOOPBACK
from tests.support.polling import first_match

_STOP_TIMEOUT: Final = 2.0
_HANDSHAKE_TIMEOUT: Final = 5.0

PROJECT: Final = "carto-test"
DATASETS: Final = ("carto_dw", "analytics")
QUERY_ROWS: Final = ((1, "carto"), (2, "proxy"), (3, "tunnel"))
"""What every query returns, two rows on the first page and one on the second."""
ACCESS_TOKEN: Final = "ya29.fake-token"


@dataclass(frozen=True, slots=True)
class Request:
    """One request the server answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lowercased."""
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")


@dataclass(frozen=True, slots=True)
class Response:
    """What a route answers."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Route = tuple[str, "re.Pattern[str]", Callable[[Request, "re.Match[str]"], Response]]


def route(
    method: str, pattern: str, handler: Callable[[Request, re.Match[str]], Response]
) -> Route:
    """Build a route: *method* and a regular expression matched against the whole path."""
    return method, re.compile(pattern), handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection must not pin a thread for long
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)  # the Snowflake drivers compress request bodies
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        response = self.server.owner.dispatch(request)
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: requests are in ``FakeHTTPServer.requests``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeHTTPServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__((LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a reverse DNS lookup we must not do.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK, int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        context = self.owner.context
        if context is not None:
            # Handshake in the connection's thread, never in the accept loop.
            conn.settimeout(_HANDSHAKE_TIMEOUT)
            try:
                conn = context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return  # a client that distrusts the certificate: nothing to answer
            conn.settimeout(None)
        with self.lock:
            self.connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self.lock:
                self.connections.discard(conn)
            if conn is not request:
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Keep errors for assertions instead of printing tracebacks.
        error = sys.exc_info()[1]
        if error is not None:
            self.owner.record_error(error)

    def close_connections(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)


class FakeHTTPServer:
    """A threaded JSON server on 127.0.0.1 (ephemeral port); use as a context manager.

    Unknown paths get 404 with ``{"error": ...}``. Every request is recorded, in order.
    """

    def __init__(
        self, routes: list[Route], *, context: ssl.SSLContext | None = None, name: str = "fake"
    ) -> None:
        self.routes = list(routes)
        self.context = context
        self.name = name
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        """``https`` with a TLS context, else ``http``."""
        return "https" if self.context is not None else "http"

    def start(self) -> FakeHTTPServer:
        """Bind and serve; return self."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close kept-alive connections, joining within two seconds."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._server.server_port

    def url_for(self, host: str, path: str = "") -> str:
        """``<scheme>://<host>:<port><path>``."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def record_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    @property
    def errors(self) -> list[BaseException]:
        """Errors raised while serving (a broken test client, a handler bug)."""
        with self._lock:
            return list(self._errors)

    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self._requests.append(request)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is not None and method == request.method:
                return handler(request, match)
        message = f"no route for {request.method} {request.path}"
        return Response({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the requests answered so far."""
        with self._lock:
            return list(self._requests)

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (with *method* only, if given)."""
        return [r.path for r in self.requests if method is None or r.method == method]

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def wait_for(self, predicate: Callable[[Request], bool], timeout: float = 5.0) -> Request:
        """Poll until a recorded request matches *predicate*; fail after *timeout*."""
        return first_match(
            lambda: self.requests,
            predicate,
            timeout,
            failure=lambda: f"{self.name}: no matching request; saw {self.requests}",
        )


# -- BigQuery v2 REST ----------------------------------------------------------------------

_SCHEMA: Final = {
    "fields": [
        {"name": "n", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "word", "type": "STRING", "mode": "NULLABLE"},
    ]
}
_PAGE_TOKEN: Final = "page-2"
_JOB_ID: Final = "job-1"


def _rows(rows: tuple[tuple[int, str], ...]) -> list[dict[str, Any]]:
    return [{"f": [{"v": str(n)}, {"v": word}]} for n, word in rows]


def _job_reference(project: str) -> dict[str, str]:
    return {"projectId": project, "jobId": _JOB_ID, "location": "US"}


def _list_datasets(request: Request, match: re.Match[str]) -> Response:
    project = match["project"]
    datasets = [
        {
            "kind": "bigquery#dataset",
            "id": f"{project}:{name}",
            "datasetReference": {"projectId": project, "datasetId": name},
        }
        for name in DATASETS
    ]
    return Response({"kind": "bigquery#datasetList", "datasets": datasets})


def _query(request: Request, match: re.Match[str]) -> Response:
    """``jobs.query``: complete at once, first page of :data:`QUERY_ROWS` and a page token."""
    return Response(
        {
            "kind": "bigquery#queryResponse",
            "jobComplete": True,
            "jobReference": _job_reference(match["project"]),
            "schema": _SCHEMA,
            "rows": _rows(QUERY_ROWS[:2]),
            "totalRows": str(len(QUERY_ROWS)),
            "pageToken": _PAGE_TOKEN,
        }
    )


def _query_results(request: Request, match: re.Match[str]) -> Response:
    """``jobs.getQueryResults``: the remaining page when asked with the page token."""
    page = QUERY_ROWS[2:] if request.query.get("pageToken") == [_PAGE_TOKEN] else QUERY_ROWS
    return Response(
        {
            "kind": "bigquery#getQueryResultsResponse",
            "jobComplete": True,
            "jobReference": _job_reference(match["project"]),
            "schema": _SCHEMA,
            "rows": _rows(page),
            "totalRows": str(len(QUERY_ROWS)),
        }
    )


def _job(request: Request, match: re.Match[str]) -> Response:
    """``jobs.get``: the query job, done."""
    project = match["project"]
    return Response(
        {
            "kind": "bigquery#job",
            "id": f"{project}:US.{_JOB_ID}",
            "jobReference": _job_reference(project),
            "configuration": {
                "jobType": "QUERY",
                "query": {
                    "query": "SELECT n, word FROM t",
                    "destinationTable": {"projectId": project, "datasetId": "_t", "tableId": "r"},
                },
            },
            "status": {"state": "DONE"},
            "statistics": {"creationTime": "1700000000000", "query": {}},
        }
    )


def bigquery_routes() -> list[Route]:
    """Routes for ``datasets.list``, ``jobs.query``, ``jobs.get`` and ``jobs.getQueryResults``."""
    base = r"/bigquery/v2/projects/(?P<project>[^/]+)"
    return [
        route("GET", rf"{base}/datasets", _list_datasets),
        route("POST", rf"{base}/queries", _query),
        route("GET", rf"{base}/jobs/(?P<job>[^/]+)", _job),
        route("GET", rf"{base}/queries/(?P<job>[^/]+)", _query_results),
    ]


# -- Google OAuth 2.0 token endpoint -------------------------------------------------------


def _token(request: Request, match: re.Match[str]) -> Response:
    grant = parse_qs(request.body.decode()).get("grant_type", [""])[0]
    if not grant:
        return Response({"error": "invalid_request"}, 400)
    return Response({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})


def token_routes() -> list[Route]:
    """``POST /token``: any grant gets :data:`ACCESS_TOKEN` for an hour."""
    return [route("POST", r"/token", _token)]
