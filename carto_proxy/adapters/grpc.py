"""gRPC channels that follow carto_proxy's routing, whatever the process environment says.

gRPC's C-core picks its proxy from the lowercase ``grpc_proxy``, ``https_proxy`` and
``http_proxy`` variables, applies the lowercase ``no_grpc_proxy``/``no_proxy`` lists even to an
explicit ``grpc.http_proxy`` channel argument, and silently connects direct when the proxy URL is
``https://`` (grpc/grpc#20199). So :func:`secure_channel` and :func:`insecure_channel` do not ask
gRPC to find a proxy at all: for a proxied target they dial the proxy themselves and make gRPC
send ``CONNECT <target>`` to it (the ``grpc.http_connect_server`` channel argument), with
``grpc.enable_http_proxy`` off so that no variable can change the decision.

``grpc.http_connect_server`` is an internal C-core argument; the ``grpc`` extra pins grpcio to
the releases the test suite proves it with.

>>> from carto_proxy import ProxyConfig
>>> config = ProxyConfig.from_env(environ={"grpc_proxy": "http://my-proxy:3128"})
>>> channel_options(config, "bigquerystorage.googleapis.com:443")
[('grpc.http_proxy', 'http://my-proxy:3128')]
>>> channel_options(ProxyConfig.direct(), "localhost:50051")
[('grpc.enable_http_proxy', 0)]
"""

from __future__ import annotations

import functools
import importlib.resources
import weakref
from collections.abc import Sequence
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Action, Route
from carto_proxy._target import Protocol
from carto_proxy.adapters._common import import_extra, refusal, report_route, resolve_config

grpc = import_extra("grpc", "grpc")

__all__ = [
    "aio_insecure_channel",
    "aio_secure_channel",
    "channel_options",
    "dial",
    "insecure_channel",
    "root_certificates",
    "route_for",
    "secure_channel",
    "ssl_credentials",
]

ChannelOptions = Sequence[tuple[str, Any]]

# Channel arguments that would let gRPC pick its own proxy, or tunnel somewhere else.
_REFUSED_OPTIONS = (
    "grpc.http_proxy",
    "grpc.enable_http_proxy",
    "grpc.http_connect_server",
    "grpc.address_http_proxy",
    "grpc.address_http_proxy_enabled_addresses",
)
# gRPC targets that never go through a proxy (gRPC itself never proxies them either).
_LOCAL_SCHEMES = ("unix:", "unix-abstract:", "vsock:")
_ROOTS_PEM = "_cython/_credentials/roots.pem"


def channel_options(config: ProxyConfig | None, target: str) -> list[tuple[str, Any]]:
    """Return the channel arguments that express the route of *target*, for your own channel.

    ``[("grpc.http_proxy", "http://host:port")]`` when the route goes through the proxy,
    ``[("grpc.enable_http_proxy", 0)]`` when it goes direct.

    Warning:
        gRPC still applies the process's lowercase ``no_proxy``/``no_grpc_proxy`` variables to
        an explicit ``grpc.http_proxy``, so with these options alone the environment can still
        send a proxied target direct. :func:`secure_channel` and :func:`insecure_channel` are
        immune to that; prefer them.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        target: a gRPC target: ``host:port``, ``dns:///host:port``, ``ipv4:…``, ``ipv6:…``.
    """
    route = _route(resolve_config(config), target)
    if route is not None and route.action is Action.PROXY and route.proxy is not None:
        return [("grpc.http_proxy", str(route.proxy))]
    return [("grpc.enable_http_proxy", 0)]


def ssl_credentials(
    config: ProxyConfig | None = None,
    *,
    private_key: bytes | None = None,
    certificate_chain: bytes | None = None,
) -> Any:
    """Return ``grpc.ChannelCredentials`` trusting gRPC's bundled roots plus the extra CA.

    The extra CA is ``NODE_EXTRA_CA_CERTS`` (or a Helm inline CA): a TLS-inspecting proxy re-signs
    origins with it. gRPC ignores ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE``
    (googleapis/python-bigquery#1370), and ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` is not read
    here either: the roots are always passed explicitly.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        private_key: PEM client key, for mutual TLS.
        certificate_chain: PEM client certificate chain, for mutual TLS.
    """
    config = resolve_config(config)
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates(config),
        private_key=private_key,
        certificate_chain=certificate_chain,
    )


def root_certificates(config: ProxyConfig) -> bytes:
    """Return gRPC's bundled roots followed by the configuration's extra CA, as PEM bytes."""
    roots = _bundled_roots()
    extra = config.extra_ca_certs()  # reads a deferred CA file; CP305 if it is not there
    if not extra:
        return roots
    # roots.pem has no trailing newline: gluing a PEM block straight onto its last
    # "-----END CERTIFICATE-----" line gives CERTIFICATE_VERIFY_FAILED.
    return roots.rstrip(b"\n") + b"\n" + extra.encode("ascii")


@functools.cache
def _bundled_roots() -> bytes:
    return importlib.resources.files("grpc").joinpath(_ROOTS_PEM).read_bytes()


def dial(
    config: ProxyConfig | None, target: str, options: ChannelOptions = (), *, tls: bool
) -> tuple[str, list[tuple[str, Any]]]:
    """Return the address to dial and the channel arguments that carry *target*'s route.

    This is what the channel constructors use; call it to build a channel some other way
    (``grpc.aio``, ``google.api_core``) with the same guarantees.

    For a proxied target, the address is the proxy's and ``grpc.http_connect_server`` names the
    real target, so gRPC sends ``CONNECT host:port`` to the proxy; ``grpc.default_authority``
    (and, with *tls*, ``grpc.ssl_target_name_override``) keep the target's name for the
    ``:authority`` header, SNI and certificate check. For a direct one, the address is *target*
    unchanged and gRPC's own proxy lookup is switched off. *options* come last, so they can
    override the authority; those that would defeat the routing are refused.

    Raises:
        ConfigError: *options* hold ``grpc.http_proxy``, ``grpc.enable_http_proxy``,
            ``grpc.http_connect_server`` or ``grpc.address_http_proxy*``.
        TargetError: *target* cannot be parsed.
    """
    address, args, _ = _dial(resolve_config(config), target, options, tls=tls)
    return address, args


def _dial(
    config: ProxyConfig, target: str, options: ChannelOptions, *, tls: bool
) -> tuple[str, list[tuple[str, Any]], Route | None]:
    """:func:`dial`, and the route it follows (``None`` for a local-socket target)."""
    given = list(options)
    for name, _ in given:
        if name in _REFUSED_OPTIONS:
            raise refusal(
                f"options[{name!r}]",
                "this channel argument would bypass carto_proxy's routing",
                "remove it; carto_proxy sets the proxy from the configuration "
                "(use ProxyConfig / NO_PROXY to change the route)",
            )
    route = _route(config, target)
    if route is None or route.action is Action.DIRECT or route.proxy is None:
        return target, [("grpc.enable_http_proxy", 0), *given], route
    ours: list[tuple[str, Any]] = [
        ("grpc.enable_http_proxy", 0),
        ("grpc.http_connect_server", route.target.authority),
        ("grpc.default_authority", route.target.authority),
    ]
    if tls:
        ours.append(("grpc.ssl_target_name_override", route.target.host))
    # gRPC keeps the last value of a repeated channel argument: the caller's win.
    return route.proxy.authority, [*ours, *given], route


# The route of each channel built here, for route_for() (a channel keeps no such thing).
_routes: weakref.WeakKeyDictionary[Any, Route | None] = weakref.WeakKeyDictionary()


def _remember(channel: Any, route: Route | None) -> Any:
    _routes[channel] = route
    return channel


def route_for(channel: Any) -> Route | None:
    """Return the :class:`~carto_proxy.Route` *channel* follows; no observer hears about it.

    ``None`` for a Unix-socket or vsock target, which never uses a proxy.

    >>> from carto_proxy import ProxyConfig
    >>> config = ProxyConfig.from_env(environ={"grpc_proxy": "http://my-proxy:3128"})
    >>> str(route_for(insecure_channel(config, "bigquerystorage.googleapis.com:443")))
    'PROXY grpc://bigquerystorage.googleapis.com:443 via http://my-proxy:3128 (proxy)'

    Args:
        channel: a channel from :func:`secure_channel`, :func:`insecure_channel` or their
            ``aio`` variants.

    Raises:
        TypeError: *channel* was not built by carto_proxy.
    """
    try:
        ours = channel in _routes
    except TypeError:  # not even weakly referenceable: certainly not ours
        ours = False
    if not ours:
        raise TypeError(
            "route_for() needs a channel built by carto_proxy.adapters.grpc (secure_channel(), "
            f"insecure_channel() or their aio variants), not this {type(channel).__name__}: "
            "its route is not known"
        )
    return _routes[channel]


def secure_channel(
    config: ProxyConfig | None,
    target: str,
    credentials: Any = None,
    options: ChannelOptions = (),
    **kwargs: Any,
) -> Any:
    """Return a ``grpc.Channel`` to *target* over TLS, routed by *config*.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        target: a gRPC target, e.g. ``"bigquerystorage.googleapis.com:443"``.
        credentials: ``grpc.ChannelCredentials``; default :func:`ssl_credentials`.
        options: more channel arguments.
        **kwargs: passed to :func:`grpc.secure_channel` (``compression``).

    Raises:
        ConfigError: *options* would bypass the routing (see :func:`dial`).
    """
    config = resolve_config(config)
    address, args, route = _dial(config, target, options, tls=True)
    if credentials is None:
        credentials = ssl_credentials(config)
    return _remember(grpc.secure_channel(address, credentials, options=args, **kwargs), route)


def insecure_channel(
    config: ProxyConfig | None, target: str, options: ChannelOptions = (), **kwargs: Any
) -> Any:
    """Return a plaintext ``grpc.Channel`` to *target*, routed by *config*.

    A proxied plaintext channel still goes through ``CONNECT``, as gRPC does.
    """
    address, args, route = _dial(resolve_config(config), target, options, tls=False)
    return _remember(grpc.insecure_channel(address, options=args, **kwargs), route)


def aio_secure_channel(
    config: ProxyConfig | None,
    target: str,
    credentials: Any = None,
    options: ChannelOptions = (),
    **kwargs: Any,
) -> Any:
    """Return a ``grpc.aio.Channel`` over TLS; see :func:`secure_channel`.

    ``**kwargs`` go to :func:`grpc.aio.secure_channel` (``compression``, ``interceptors``).
    """
    config = resolve_config(config)
    address, args, route = _dial(config, target, options, tls=True)
    if credentials is None:
        credentials = ssl_credentials(config)
    return _remember(grpc.aio.secure_channel(address, credentials, options=args, **kwargs), route)


def aio_insecure_channel(
    config: ProxyConfig | None, target: str, options: ChannelOptions = (), **kwargs: Any
) -> Any:
    """Return a plaintext ``grpc.aio.Channel``; see :func:`insecure_channel`."""
    address, args, route = _dial(resolve_config(config), target, options, tls=False)
    return _remember(grpc.aio.insecure_channel(address, options=args, **kwargs), route)


def _route(config: ProxyConfig, target: str) -> Route | None:
    """Route a gRPC target; ``None`` for Unix-socket and vsock targets, which stay local."""
    if target.strip().lower().startswith(_LOCAL_SCHEMES):
        return None
    return report_route(config, target, adapter="grpc", protocol=Protocol.GRPC)
