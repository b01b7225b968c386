"""How the aiohttp adapter names the route in the errors of its requests.

aiohttp's errors keep their types; the message their ``str()`` shows is extended, in the
attribute it reads (``ClientResponseError.message``, ``OSError.strerror``, the certificate
error's arguments), by the adapter's connector for every error raised while a connection is
made: refused or unreachable proxies and origins, failed TLS handshakes, a proxy's 403 or 502
to CONNECT, and timeouts (which the session then turns into ``ConnectionTimeoutError``, caused
by the named one). Errors after the connection is made (a read timeout, a server that hangs
up) are aiohttp's own: naming them would take a client middleware or a trace configuration,
which cost 2.5 % and 5 % of the throughput through a local proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carto_proxy._routing import Route
from carto_proxy.adapters._common import explain, import_extra, name_route

if TYPE_CHECKING:
    import aiohttp
else:
    aiohttp = import_extra("aiohttp", "aiohttp")

__all__ = ["NAMED_ERRORS", "name_aiohttp_route"]


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
