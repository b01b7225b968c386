"""The demo's stand-ins for CARTO's external services, and the names that lead to them.

The HTTP stand-in is the testing kit's :class:`~carto_proxy.testing.LocalOrigin` (HTTP and
HTTPS on one loopback port, a certificate for any name), told what Snowflake's login and
BigQuery's dataset list answer, as far as their drivers need. A gRPC server answers
:data:`GRPC_METHOD` with raw bytes (no protobuf). :func:`loopback_names` makes the stand-in
names resolve to the HTTP stand-in in this process, and no other name resolve at all.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from concurrent import futures
from typing import Any

from carto_proxy.cli._demo._requests import GRPC_METHOD
from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing import DirectGuard, LocalOrigin

__all__ = ["GrpcStandIn", "http_stand_in", "loopback_names"]

_LOOPBACK = "127.0.0.1"
_NOT_A_STAND_IN = "it is not one of the demo's stand-ins, and the demo does no DNS"
_SNOWFLAKE_OK = {"success": True, "data": None, "message": None, "code": None}
_SNOWFLAKE_LOGIN = {
    "success": True,
    "data": {
        "token": "demo-session-token",
        "masterToken": "demo-master-token",
        "validityInSeconds": 3600,
        "masterValidityInSeconds": 14400,
        "sessionId": 1,
        "parameters": [],
        "sessionInfo": {"roleName": "PUBLIC"},
    },
}


def http_stand_in(*, bigquery_project: str) -> LocalOrigin:
    """Return a (not yet started) origin answering Snowflake's login and BigQuery's datasets.

    Any other request gets the origin's JSON echo, with status 200.
    """
    origin = LocalOrigin()
    origin.reply("/session/v1/login-request", json=_SNOWFLAKE_LOGIN)
    origin.reply("/session", json=_SNOWFLAKE_OK)  # logout (?delete=true)
    origin.reply("/telemetry/send", json=_SNOWFLAKE_OK)
    origin.reply(
        f"/bigquery/v2/projects/{bigquery_project}/datasets",
        json={"kind": "bigquery#datasetList", "datasets": []},
    )
    return origin


def loopback_names(names: Iterable[str], address: tuple[str, int]) -> DirectGuard:
    """Return a guard resolving *names* (and ``localhost``) to *address*, refusing any other."""
    hosts: dict[str, str | tuple[str, int]] = {"localhost": _LOOPBACK}
    hosts.update(dict.fromkeys(names, address))
    return DirectGuard(hosts, hint=_NOT_A_STAND_IN)


class GrpcStandIn:
    """A TLS gRPC server on loopback answering :data:`GRPC_METHOD` with ``b"pong"``.

    Its certificate, for *names*, is signed by a CA made for this run (:attr:`ca_pem`).
    """

    def __init__(self, names: Iterable[str]) -> None:
        try:
            import trustme
        except ImportError as error:
            raise MissingExtraError("testing", "trustme") from error
        self._grpc: Any = importlib.import_module("grpc")
        self._ca = trustme.CA(organization_name="carto-proxy demo")
        self._leaf = self._ca.issue_cert(*names, _LOOPBACK)
        self._lock = threading.Lock()
        self._calls = 0
        self._server: Any = None
        self._port = 0

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, for the clients' trust store."""
        return bytes(self._ca.cert_pem.bytes())

    def __enter__(self) -> GrpcStandIn:
        grpc = self._grpc

        def ping(request: bytes, context: Any) -> bytes:
            with self._lock:
                self._calls += 1
            return b"pong"

        service, _, method = GRPC_METHOD[1:].partition("/")
        handler = grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(ping)}
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        chain = b"".join(blob.bytes() for blob in self._leaf.cert_chain_pems)
        key = bytes(self._leaf.private_key_pem.bytes())
        credentials = grpc.ssl_server_credentials([(key, chain)])
        self._port = self._server.add_secure_port(f"{_LOOPBACK}:0", credentials)
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(1.0)
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        """``(ip, port)`` it listens on."""
        return _LOOPBACK, self._port

    @property
    def calls(self) -> int:
        """How many calls it answered so far."""
        with self._lock:
            return self._calls
