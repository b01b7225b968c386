"""carto_proxy's testing kit: prove in your own tests which way your connector's traffic goes.

- :class:`RecordingProxy`: a real forward proxy on loopback, plain or TLS, that records every
  tunnel and request (:class:`ProxyRecord`) and injects faults.
- :class:`LocalOrigin`: a loopback web server answering for any host name over HTTP and HTTPS.
- :class:`GrpcOrigin`: a loopback gRPC server (plaintext and TLS) recording every call
  (:class:`GrpcCall`).
- :func:`block_direct`: going around the proxy fails at once, saying which host went direct,
  and nothing leaves loopback; the guard of every fixture.
- :class:`DirectGuard`: records, and by default refuses, the names the process resolves itself,
  i.e. the connections that go direct; resolves mapped names to local servers.
- :func:`ca_bundle`: write PEM certificates to a temporary file, for ``NODE_EXTRA_CA_CERTS``.
- :func:`proxy_environ`: set CARTO's proxy variables for a block, restore them afterwards.
- :func:`record_routes`: collect the routing decisions carto_proxy's adapters act on.
- :func:`assert_tunnelled`, :func:`assert_proxied`, :func:`assert_not_proxied`: readable
  assertions about what a proxy saw.

The pytest plugin (:mod:`carto_proxy.testing.plugin`, loaded through the ``pytest11`` entry
point) provides them as ``carto_proxy_*`` fixtures. Names are imported on first use (the
servers import ssl, trustme and threads), so that loading the plugin costs nothing in projects
that do not use them.
"""

from carto_proxy._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._assertions import assert_not_proxied as assert_not_proxied
    from ._assertions import assert_proxied as assert_proxied
    from ._assertions import assert_tunnelled as assert_tunnelled
    from ._block import block_direct as block_direct
    from ._ca_files import ca_bundle as ca_bundle
    from ._direct import DirectGuard as DirectGuard
    from ._environ import proxy_environ as proxy_environ
    from ._grpc_origin import GrpcCall as GrpcCall
    from ._grpc_origin import GrpcOrigin as GrpcOrigin
    from ._origin import LocalOrigin as LocalOrigin
    from ._origin import OriginRequest as OriginRequest
    from ._recording_proxy import ProxyRecord as ProxyRecord
    from ._recording_proxy import RecordingProxy as RecordingProxy
    from ._records import record_routes as record_routes
del TYPE_CHECKING

_HOMES = {
    "DirectGuard": "._direct",
    "GrpcCall": "._grpc_origin",
    "GrpcOrigin": "._grpc_origin",
    "LocalOrigin": "._origin",
    "OriginRequest": "._origin",
    "ProxyRecord": "._recording_proxy",
    "RecordingProxy": "._recording_proxy",
    "assert_not_proxied": "._assertions",
    "assert_proxied": "._assertions",
    "assert_tunnelled": "._assertions",
    "block_direct": "._block",
    "ca_bundle": "._ca_files",
    "proxy_environ": "._environ",
    "record_routes": "._records",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
del lazy_exports
