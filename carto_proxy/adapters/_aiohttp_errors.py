"""How the aiohttp adapter names the route in the errors of its requests.

aiohttp's errors keep their types; the message their ``str()`` shows is extended, in the
attribute it reads (``ClientResponseError.message``, ``OSError.strerror``, the certificate
error's arguments). A client middleware does it (aiohttp 3.12 and later); before 3.12 a trace
configuration's ``on_request_exception``, which costs about 25 µs a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Route
from carto_proxy.adapters._common import explain, import_extra, name_route

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL
else:
    aiohttp = import_extra("aiohttp", "aiohttp")

__all__ = ["NAMED_ERRORS", "name_aiohttp_route", "name_errors", "naming_traces", "origin"]


def origin(url: URL) -> str:
    """``scheme://host[:port]`` of *url*: what routing depends on (the path never does)."""
    return f"{url.scheme}://{url.raw_authority}"


def name_aiohttp_route(error: BaseException, route: Route) -> None:
    """Make *error*'s message name *route*, in the attribute its ``__str__`` reads."""
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        name_route(error.certificate_error, route)
    elif isinstance(error, aiohttp.ClientResponseError):  # ClientHttpProxyError: 403, 502...
        error.message = explain(error.message, route)
    elif isinstance(error, OSError) and isinstance(error.strerror, str):
        error.strerror = explain(error.strerror, route)  # ClientConnectorError and kin
    else:
        name_route(error, route)


# Errors that name the route of the request they interrupt.
NAMED_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientHttpProxyError)


async def name_errors(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
    """Client middleware: name the route of the hop in its connection errors."""
    try:
        response: aiohttp.ClientResponse = await handler(request)
    except NAMED_ERRORS as error:
        route = getattr(request, "carto_proxy_route", None)
        if route is not None:
            name_aiohttp_route(error, route)
        raise
    return response


def naming_traces(config: ProxyConfig) -> aiohttp.TraceConfig:
    """Name the route in the connection errors of the session's requests (for aiohttp
    before 3.12, which has no client middlewares; traces cost about 25 µs a request)."""
    traces = aiohttp.TraceConfig()

    async def on_request_exception(
        session: aiohttp.ClientSession,
        context: object,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        error = params.exception
        if isinstance(error, NAMED_ERRORS):
            try:
                route = config.route(origin(params.url))
            except ValueError:
                return
            name_aiohttp_route(error, route)

    traces.on_request_exception.append(on_request_exception)
    return traces
