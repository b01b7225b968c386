"""HTTP/1.1 framing for RecordingProxy, on h11: what both of its sides share.

h11 parses and frames every message; the proxy's side towards its clients (``_http11_clients``)
and towards upstreams (``_http11_upstream``) add blocking socket I/O. This module holds the
rest: the limits, the heads as the proxy reads them, the hop-by-hop
rules of forwarding, spooling a body whose length only its end tells, and one rule for doubt:
a message that carries both ``Transfer-Encoding`` and ``Content-Length`` is a framing error
(RFC 9112 §6.3 says it ought to be handled as one), like anything h11 refuses.
"""

from __future__ import annotations

import contextlib
import functools
import http
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from carto_proxy.exceptions import MissingExtraError

# The other modules import h11 from here, behind this check of the extra.
try:
    import h11
except ImportError as error:
    raise MissingExtraError("testing", "h11") from error

__all__ = [
    "CHUNK",
    "MAX_HEAD",
    "FramingError",
    "Headers",
    "RequestHead",
    "ResponseHead",
    "UpstreamError",
    "forwardable",
    "h11",
    "phrase",
    "request_head",
    "response_head",
    "sized",
]

CHUNK = 65536
# A whole request or response head, as Squid's default request_header_max_size.
MAX_HEAD = 65536
MAX_FIELDS = 100
# A body whose length only its end tells is held in memory up to this, then in a temporary file.
SPOOL_BYTES = 1024 * 1024

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        # The proxy answers 100-continue itself.
        b"expect",
    }
)

Headers = list[tuple[bytes, bytes]]
"""Header fields in order, names as the peer spelt them."""


class FramingError(Exception):
    """The client broke HTTP/1.1 framing: its connection cannot carry another request."""


class UpstreamError(Exception):
    """The upstream's answer was not an HTTP/1.1 response this proxy can relay."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request's start line and header fields.

    Attributes:
        method: the method, as sent.
        target: the request target, as sent.
        headers: the header fields.
        keep_alive: whether the client allows another request on this connection.
        length: the body's ``Content-Length`` (``0`` without one); ``None`` when chunked.
    """

    method: str
    target: str
    headers: Headers
    keep_alive: bool
    length: int | None


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final response's status line and header fields.

    Attributes:
        status: the status code.
        reason: the reason phrase, as sent.
        headers: the header fields.
        content_length: the ``Content-Length`` field; ``None`` without one.
        chunked: whether the body is chunked (which wins over ``Content-Length``).
    """

    status: int
    reason: bytes
    headers: Headers
    content_length: int | None
    chunked: bool


def forwardable(headers: Headers) -> Headers:
    """Return the end-to-end fields: no hop-by-hop ones (RFC 9110 §7.6.1), framing or Host."""
    drop = _HOP_BY_HOP | _tokens(headers, b"connection") | {b"content-length", b"host"}
    return [(name, value) for name, value in headers if name.lower() not in drop]


@contextlib.contextmanager
def sized(chunks: Iterable[bytes], length: int | None) -> Iterator[tuple[int, Iterable[bytes]]]:
    """Give a body its length: the one declared, or else by spooling the whole body first.

    A spooled body stays in memory up to 1 MiB and goes to a temporary file beyond, so a body
    of any size costs at most that much memory.

    Yields:
        The length, and the body's chunks.
    """
    if length is not None:
        yield length, chunks
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        for chunk in chunks:
            spool.write(chunk)
        size = spool.tell()
        spool.seek(0)
        yield size, iter(functools.partial(spool.read, CHUNK), b"")


def request_head(event: h11.Request) -> RequestHead:
    """Return the head of a request h11 parsed, checked.

    Raises:
        FramingError: it has too many fields or ambiguous framing.
    """
    headers = _checked(list(event.headers.raw_items()), FramingError)
    tokens = _tokens(headers, b"connection") | _tokens(headers, b"proxy-connection")
    return RequestHead(
        method=event.method.decode("ascii"),
        target=event.target.decode("ascii"),
        headers=headers,
        keep_alive=event.http_version == b"1.1" and b"close" not in tokens,
        length=None if _field(headers, b"transfer-encoding") else int(_field(headers) or 0),
    )


def response_head(event: h11.Response) -> ResponseHead:
    """Return the head of a response h11 parsed, checked.

    Raises:
        UpstreamError: it has too many fields or ambiguous framing.
    """
    headers = _checked(list(event.headers.raw_items()), UpstreamError)
    length = _field(headers)
    return ResponseHead(
        status=event.status_code,
        reason=bytes(event.reason),
        headers=headers,
        content_length=None if length is None else int(length),
        chunked=_field(headers, b"transfer-encoding") is not None,
    )


def _checked(headers: Headers, error: type[Exception]) -> Headers:
    if len(headers) > MAX_FIELDS:
        raise error(f"more than {MAX_FIELDS} header fields")
    if _field(headers) is not None and _field(headers, b"transfer-encoding") is not None:
        raise error("both Transfer-Encoding and Content-Length: the framing is ambiguous")
    return headers


def _field(headers: Headers, name: bytes = b"content-length") -> bytes | None:
    # h11 has already merged repeated Content-Length fields and refused repeated
    # Transfer-Encoding ones, so the first is the only one.
    return next((value for key, value in headers if key.lower() == name), None)


def _tokens(headers: Headers, name: bytes) -> set[bytes]:
    """Return the comma-separated, lowercased tokens of every ``name`` field."""
    return {
        token.strip().lower()
        for key, value in headers
        if key.lower() == name
        for token in value.split(b",")
        if token.strip()
    }


def phrase(status: int) -> bytes:
    """The reason phrase of ``status``; empty for an unknown one."""
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
