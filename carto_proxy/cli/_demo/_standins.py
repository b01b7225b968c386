"""The demo's stand-ins for CARTO's external services, and the names that lead to them.

The HTTP stand-in is the testing kit's :class:`~carto_proxy.testing.LocalOrigin` (HTTP and
HTTPS on one loopback port, a certificate for any name), told what Snowflake's login and
BigQuery's dataset list answer, as far as their drivers need; the gRPC one is the kit's
:class:`~carto_proxy.testing.GrpcOrigin`, answering :data:`GRPC_METHOD` with raw bytes (no
protobuf). :func:`loopback_names` makes the stand-in names resolve to the HTTP stand-in in
this process, and no other name resolve at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from carto_proxy.cli._demo._requests import GRPC_METHOD
from carto_proxy.testing import DirectGuard, GrpcOrigin, LocalOrigin

__all__ = ["grpc_stand_in", "http_stand_in", "loopback_names", "untrusted_stand_in"]

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


def untrusted_stand_in() -> LocalOrigin:
    """Return a (not yet started) origin whose CA, its own, no scenario trusts."""
    return LocalOrigin()


def loopback_names(names: Mapping[str, tuple[str, int]]) -> DirectGuard:
    """Return a guard resolving each name (and ``localhost``) to its stand-in's address, and
    refusing any other name."""
    hosts: dict[str, str | tuple[str, int]] = {"localhost": _LOOPBACK}
    hosts.update(names)
    return DirectGuard(hosts, hint=_NOT_A_STAND_IN)


def grpc_stand_in(name: str) -> GrpcOrigin:
    """Return a (not yet started) gRPC origin answering :data:`GRPC_METHOD` with ``b"pong"``.

    Its certificate names *name*, signed by a CA of its own (``ca_pem``).
    """
    origin = GrpcOrigin(names=[name])
    origin.reply(GRPC_METHOD, b"pong")
    return origin
