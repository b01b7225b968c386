"""How the aiohttp adapter keeps the proxy hop's TLS apart from the origin's.

aiohttp has one ``ssl`` setting per request and uses it for both handshakes of a request
through an ``https://`` proxy: it builds the request to the proxy with the origin request's
``ssl`` (aiohttp 3.9–3.14, ``TCPConnector._create_proxy_connection`` and
``_update_proxy_auth_header_and_build_proxy_req``: ``ClientRequest(..., ssl=req.ssl)``). The
context given is therefore the origin context, which hands the one handshake whose server name
is the proxy's host to the proxy-hop context; asyncio starts every TLS handshake with
``SSLContext.wrap_bio``. Anything calling the context in another way gets the origin context,
which verifies: a failure, never a widening.
"""

from __future__ import annotations

import ssl
import sys

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import ProxyURL
from carto_proxy.exceptions import ConfigError

__all__ = ["ProxyHopContext", "check_tls_in_tls", "host_name", "proxy_hop_context"]

# TLS in TLS (an https:// target through an https:// proxy) needs asyncio's start_tls on a TLS
# transport, which Python 3.11 brought (bpo-44011); aiohttp warns and fails before it.
_TLS_IN_TLS_PYTHON = (3, 11)


class ProxyHopContext(ssl.SSLContext):
    """The origin context, except for the handshake with the proxy itself.

    The adapter gives it only to requests whose origin host is not the proxy's.
    """

    carto_proxy_hop: tuple[str, ssl.SSLContext]

    def wrap_bio(  # type: ignore[override]
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        host, proxy_context = self.carto_proxy_hop
        if server_hostname is not None and host_name(server_hostname) == host:
            return proxy_context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def __repr__(self) -> str:
        return f"<origin context; proxy {self.carto_proxy_hop[0]} unverified>"


def host_name(name: str) -> str:
    """*name* as TLS server names are compared here: lowercase, no trailing dot."""
    return name.rstrip(".").lower()


def proxy_hop_context(config: ProxyConfig, proxy: ProxyURL) -> ssl.SSLContext:
    """The origin context whose handshake with *proxy* uses the proxy-hop context."""
    context = config.ssl_context()
    context.__class__ = ProxyHopContext  # same layout: an ssl.SSLContext subclass, no slots
    context.carto_proxy_hop = (proxy.host, config.proxy_ssl_context())  # type: ignore[attr-defined]
    return context


def check_tls_in_tls(config: ProxyConfig, version: tuple[int, int] | None = None) -> None:
    """Refuse an ``https://`` HTTPS_PROXY on a Python where aiohttp cannot tunnel TLS in TLS.

    Raises:
        ConfigError: HTTPS_PROXY is ``https://`` and Python (*version*, by default the
            running one) is older than 3.11 (CP403).
    """
    proxy = config.https_proxy
    python = version or (sys.version_info.major, sys.version_info.minor)
    if proxy is not None and proxy.is_tls and python < _TLS_IN_TLS_PYTHON:
        raise ConfigError(
            "HTTPS_PROXY",
            str(proxy),
            "aiohttp cannot send https:// requests through an https:// proxy before "
            "Python 3.11: asyncio cannot start TLS inside a TLS connection (bpo-44011)",
            "run on Python 3.11 or later, or use an http:// proxy",
            code="CP403",
        )
