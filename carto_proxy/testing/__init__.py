"""carto_proxy's testing kit: prove in your own tests which way your connector's traffic goes.

- :class:`RecordingProxy`: a real forward proxy on loopback, plain or TLS, that records every
  tunnel and request (:class:`ProxyRecord`) and injects faults.
- :class:`LocalOrigin`: a loopback web server answering for any host name over HTTP and HTTPS.
- :class:`GrpcOrigin`: a loopback gRPC server, plaintext and TLS, recording every call
  (:class:`GrpcCall`).
- :class:`DirectGuard`: records, and by default refuses, the names the process resolves itself,
  i.e. the connections that go direct.
- :func:`proxy_environ`: set CARTO's proxy variables for a block, restore them afterwards.
- :func:`record_routes`: collect the routing decisions carto_proxy's adapters act on.
- :func:`assert_tunnelled`, :func:`assert_proxied`, :func:`assert_not_proxied`: readable
  assertions about what a proxy saw.

The pytest plugin (:mod:`carto_proxy.testing.plugin`, loaded through the ``pytest11`` entry
point) provides them as ``carto_proxy_*`` fixtures. Names are imported on first use, so that
loading the plugin costs nothing in projects that do not use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._assertions import assert_not_proxied, assert_proxied, assert_tunnelled
    from ._direct import DirectGuard
    from ._environ import proxy_environ
    from ._grpc_origin import GrpcCall, GrpcOrigin
    from ._origin import LocalOrigin, OriginRequest
    from ._recording_proxy import ProxyRecord, RecordingProxy
    from ._records import record_routes

__all__ = [
    "DirectGuard",
    "GrpcCall",
    "GrpcOrigin",
    "LocalOrigin",
    "OriginRequest",
    "ProxyRecord",
    "RecordingProxy",
    "assert_not_proxied",
    "assert_proxied",
    "assert_tunnelled",
    "proxy_environ",
    "record_routes",
]

_HOMES = {
    "DirectGuard": "_direct",
    "GrpcCall": "_grpc_origin",
    "GrpcOrigin": "_grpc_origin",
    "LocalOrigin": "_origin",
    "OriginRequest": "_origin",
    "ProxyRecord": "_recording_proxy",
    "RecordingProxy": "_recording_proxy",
    "assert_not_proxied": "_assertions",
    "assert_proxied": "_assertions",
    "assert_tunnelled": "_assertions",
    "proxy_environ": "_environ",
    "record_routes": "_records",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Not cached in globals(): the module in sys.modules stays the one source of truth, even
    # where sys.modules is rolled back between sessions (pytester's in-process runs).
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
