"""What the httpx adapter's clients and transports are built from: the arguments it refuses,
the origin context, and the inner transports of each route."""

from __future__ import annotations

import ssl
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from carto_proxy._config import ProxyConfig
from carto_proxy._proxy_url import ProxyURL
from carto_proxy.adapters._common import (
    ROUTING_FIX,
    import_extra,
    refusal,
    refuse_arguments,
    refuse_trust_env,
)

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_extra("httpx", "httpx")

__all__ = ["DEFAULT_LIMITS", "inner_transports", "origin_context", "transport_options"]

_T = TypeVar("_T")

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's

_TRUST_FIX = (
    "remove it: origins are verified with certifi plus NODE_EXTRA_CA_CERTS; put extra CAs "
    "in NODE_EXTRA_CA_CERTS, or pass verify=config.ssl_context() after adjusting it "
    "(e.g. load_cert_chain() for a client certificate)"
)
_CERT_FIX = (
    "pass verify=ctx where ctx = config.ssl_context() and ctx.load_cert_chain(...) "
    "(httpx 0.28 deprecates cert=)"
)


def inner_transports(
    transport_class: Callable[..., _T], config: ProxyConfig, origin: ssl.SSLContext, **options: Any
) -> Callable[[ProxyURL | None], _T]:
    """How a routing transport builds the inner transport of a route's proxy (or of none).

    httpx's own proxy and environment handling stay off: the route has been decided already.
    """

    def make(proxy: ProxyURL | None) -> _T:
        return transport_class(
            verify=origin, trust_env=False, proxy=_proxy(config, proxy), **options
        )

    return make


def transport_options(
    config: ProxyConfig, kwargs: MutableMapping[str, Any], function: str
) -> tuple[ssl.SSLContext, dict[str, Any]]:
    """Refuse what would defeat the routing; return the origin context and transport options.

    ``verify`` is taken out of *kwargs*; ``http1``, ``http2`` and ``limits`` are copied, and
    stay for the client too: it only uses them to check that ``h2`` is installed, since it
    builds no transport of its own.
    """
    adapter = f"carto_proxy.adapters.httpx.{function}"
    refuse_arguments(
        kwargs,
        ("proxy", "proxies", "mounts", "transport", "uds"),
        adapter=adapter,
        fix=ROUTING_FIX,
    )
    refuse_arguments(kwargs, ("cert",), adapter=adapter, fix=_CERT_FIX)
    refuse_trust_env(
        kwargs,
        adapter=adapter,
        reads="httpx would read HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE and .netrc",
    )
    origin = origin_context(config, kwargs.pop("verify", True), function)
    options = {
        "http1": kwargs.get("http1", True),
        "http2": kwargs.get("http2", False),
        "limits": kwargs.get("limits", DEFAULT_LIMITS),
    }
    return origin, options


def origin_context(config: ProxyConfig, verify: object, function: str) -> ssl.SSLContext:
    if verify is True:
        return config.ssl_context()
    if (
        isinstance(verify, ssl.SSLContext)
        and verify.verify_mode == ssl.CERT_REQUIRED
        and verify.check_hostname
    ):
        return verify
    raise refusal(
        f"carto_proxy.adapters.httpx.{function}(verify=...)",
        "only verify=True or a verifying ssl.SSLContext is accepted; origin certificates are "
        "always verified (NODE_TLS_REJECT_UNAUTHORIZED=0 only concerns the proxy's own "
        "certificate)",
        _TRUST_FIX,
    )


def _proxy(config: ProxyConfig, proxy: ProxyURL | None) -> httpx.Proxy | None:
    if proxy is None:
        return None
    # httpcore refuses a proxy ssl_context for http:// proxies ("The proxy_ssl_context argument
    # is not allowed for the http scheme"), and for https:// ones httpx ignores verify=:
    # encode/httpx#1434, #1189.
    context = config.proxy_ssl_context() if proxy.is_tls else None
    return httpx.Proxy(str(proxy), ssl_context=context)
