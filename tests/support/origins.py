"""The suite's local origins, on 127.0.0.1, all built on the testing kit's LocalOrigin.

- :class:`OriginServer` answers every request with 200 and ``{"origin": name, "path": ...,
  "host": ...}``; :func:`start_origins` starts the three a session needs: plain HTTP, HTTPS
  (signed by the session's origin CA) and untrusted HTTPS (a CA nobody trusts).
- :class:`FakeHTTPServer` answers a table of routes with JSON, as a fake service
  (``fake_bigquery``, ``fake_snowflake``); unknown paths get 404.

Each is a :class:`~carto_proxy.testing.LocalOrigin` (HTTP and HTTPS on one port, every
request recorded, stopped within a second) with a handler of its own; ``scheme`` only says
how tests address it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from carto_proxy.testing import LocalOrigin, OriginRequest
from tests.support.names import LOOPBACK
from tests.support.pki import PKI
from tests.support.polling import first_match

_Recorded = TypeVar("_Recorded")
_Self = TypeVar("_Self", bound="_Served[Any]")
_Reply = tuple[int, Mapping[str, str], bytes]
_JSON = {"Content-Type": "application/json"}


class _Served(Generic[_Recorded]):
    """A named LocalOrigin answering with :meth:`_answer`; use as a context manager."""

    def __init__(self, name: str, *, ca: Any = None) -> None:
        self.name = name
        self.scheme = "https" if ca is not None else "http"
        self._ca = ca
        self._origin: LocalOrigin | None = None

    def _answer(self, request: OriginRequest) -> _Reply:
        raise NotImplementedError

    def _recorded(self, request: OriginRequest) -> _Recorded:
        raise NotImplementedError

    def start(self: _Self) -> _Self:
        """Listen on 127.0.0.1 (an ephemeral port) and start answering; return self."""
        if self._origin is not None:
            raise RuntimeError(f"origin {self.name!r} already started")
        self._origin = LocalOrigin(host=LOOPBACK, ca=self._ca).start()
        self._origin.respond_with(self._answer)
        return self

    def stop(self) -> None:
        """Close every connection and join every thread within a second; idempotent."""
        origin, self._origin = self._origin, None
        if origin is not None:
            origin.stop()

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def origin(self) -> LocalOrigin:
        """The running LocalOrigin."""
        if self._origin is None:
            raise RuntimeError(f"origin {self.name!r} is not running")
        return self._origin

    @property
    def port(self) -> int:
        """The ephemeral port it listens on."""
        return self.origin.port

    @property
    def url(self) -> str:
        """``<scheme>://127.0.0.1:<port>``, without a trailing slash."""
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def url_for(self, host: str, path: str = "/") -> str:
        """Return this server's URL under another host name, e.g. ``api.example.test``."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def requests(self) -> list[_Recorded]:
        """A snapshot of every request answered since start (or the last :meth:`clear`)."""
        return [self._recorded(request) for request in self.origin.requests]

    @property
    def errors(self) -> list[Exception]:
        """Connection errors so far, e.g. ``ssl.SSLError`` from clients that refused the cert."""
        return self.origin.errors

    def clear(self) -> None:
        """Forget recorded requests and errors."""
        self.origin.clear()
        self.origin.respond_with(self._answer)  # clear() forgets the handler too

    def wait_for(self, predicate: Callable[[_Recorded], bool], timeout: float = 5.0) -> _Recorded:
        """Poll the request log until ``predicate`` matches an entry; fail after ``timeout``."""
        return first_match(
            lambda: self.requests,
            predicate,
            timeout,
            failure=lambda: f"{self.name}: no matching request in {timeout}s; saw {self.requests}",
        )

    def __repr__(self) -> str:
        where = self.url if self._origin is not None else "stopped"
        return f"<{type(self).__name__} {self.name!r} {where}>"


class OriginServer(_Served[OriginRequest]):
    """An origin answering every request with 200 and its name, the path and the Host header.

    Args:
        name: what the JSON answer calls it (``"origin"``).
        ca: the ``trustme.CA`` that signs its HTTPS certificates; without one it is an
            ``http://`` origin (a TLS client would meet a certificate nobody trusts).
    """

    def _answer(self, request: OriginRequest) -> _Reply:
        body = {"origin": self.name, "path": request.path, "host": request.host}
        return 200, _JSON, json.dumps(body).encode()

    def _recorded(self, request: OriginRequest) -> OriginRequest:
        return request

    def hosts_seen(self) -> set[str]:
        """Return the host names (Host header, lowercased, port removed) of requests so far."""
        return {_host_name(r.host) for r in self.requests if r.host}


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True, slots=True, kw_only=True)
class Origins:
    """The three origin servers a test session needs."""

    http: OriginServer
    """Plain HTTP, ``name="http"``."""
    https: OriginServer
    """HTTPS signed by ``pki.origin_ca``, ``name="https"``."""
    untrusted: OriginServer
    """HTTPS signed by ``pki.untrusted_ca``, ``name="untrusted"``."""

    def clear(self) -> None:
        """Forget every server's recorded requests."""
        for server in (self.http, self.https, self.untrusted):
            server.clear()


@contextlib.contextmanager
def start_origins(pki: PKI) -> Iterator[Origins]:
    """Start the plain, HTTPS and untrusted HTTPS origins; stop them all on exit."""
    with (
        OriginServer("http") as http,
        OriginServer("https", ca=pki.origin_ca) as https,
        OriginServer("untrusted", ca=pki.untrusted_ca) as untrusted,
    ):
        yield Origins(http=http, https=https, untrusted=untrusted)


# -- JSON fakes of services --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One request a fake answered, as its routes see it."""

    method: str
    path: str
    """Without the query string."""
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    """Header names lowercased."""
    body: bytes
    """Decompressed when sent gzipped (the Snowflake drivers compress request bodies)."""

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")


@dataclass(frozen=True, slots=True)
class Response:
    """What a route answers: *body* as JSON."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Route = tuple[str, "re.Pattern[str]", Callable[[Request, "re.Match[str]"], Response]]


def route(
    method: str, pattern: str, handler: Callable[[Request, re.Match[str]], Response]
) -> Route:
    """Build a route: *method* and a regular expression matched against the whole path."""
    return method, re.compile(pattern), handler


class FakeHTTPServer(_Served[Request]):
    """A fake service answering *routes* with JSON; unknown paths get 404 with ``{"error"}``.

    Args:
        routes: tried in order; the first whose method and pattern match answers.
        ca: signs its HTTPS certificates, as for :class:`OriginServer`.
        name: what errors and ``repr`` call it.
    """

    def __init__(self, routes: list[Route], *, ca: Any = None, name: str = "fake") -> None:
        super().__init__(name, ca=ca)
        self.routes = list(routes)

    def _recorded(self, request: OriginRequest) -> Request:
        parts = urlsplit(request.path)
        body = request.body
        if request.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return Request(request.method, parts.path, parse_qs(parts.query), request.headers, body)

    def _answer(self, request: OriginRequest) -> _Reply:
        response = self.dispatch(self._recorded(request))
        return response.status, {**_JSON, **response.headers}, json.dumps(response.body).encode()

    def dispatch(self, request: Request) -> Response:
        """What the routes answer to *request*."""
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is not None and method == request.method:
                return handler(request, match)
        message = f"no route for {request.method} {request.path}"
        return Response({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)

    def url_for(self, host: str, path: str = "") -> str:
        """``<scheme>://<host>:<port><path>``: with no path, a client's ``api_endpoint``."""
        return super().url_for(host, path)

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (with *method* only, if given)."""
        return [r.path for r in self.requests if method is None or r.method == method]
