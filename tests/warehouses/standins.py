"""The stand-ins behind the lab's real names: Google (REST, OAuth, metadata), BigQuery Storage
(gRPC), Snowflake, its result-chunk storage, OCSP, CRL and AWS STS.

Each stand-in listens on an ephemeral loopback port; :data:`HOSTS` says which real name and
port a :class:`~tests.warehouses.network.Tap` serves it on, and how that name is routed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from carto_proxy.testing import LocalOrigin
from tests.support.fake_bigquery import bigquery_routes, token_routes
from tests.support.fake_snowflake import gzipped_chunk, start_fake_snowflake
from tests.support.grpc_server import GrpcServer
from tests.support.origins import FakeHTTPServer, Request, Response, Route, route
from tests.support.pki import PKI
from tests.warehouses.network import METADATA_IP

ACCOUNT: Final = "xy12345.eu-central-1"
SNOWFLAKE_HOST: Final = f"{ACCOUNT}.snowflakecomputing.com"
STAGE_HOST: Final = "sfc-eu-stage.s3.eu-central-1.amazonaws.com"
CHUNK_URL: Final = f"https://{STAGE_HOST}/results/01-fake-arrow-query/chunk_0"
STORAGE_HOST: Final = "bigquerystorage.googleapis.com"
SERVICE_ACCOUNT: Final = "carto@carto-test.iam.gserviceaccount.com"


@dataclass(frozen=True, slots=True)
class Host:
    """A real name the lab serves: its port, its address, its stand-in, how it is routed."""

    name: str
    port: int
    address: str
    backend: str
    """``google``, ``storage``, ``snowflake`` or ``chunks``: the stand-in behind it."""
    kind: str = "https"
    """``https``, ``http`` or ``grpc``: how a route is asked for it."""


def _hosts() -> tuple[Host, ...]:
    names = [
        ("bigquery.googleapis.com", 443, "google", "https"),
        ("oauth2.googleapis.com", 443, "google", "https"),
        ("sts.googleapis.com", 443, "google", "https"),
        ("iamcredentials.googleapis.com", 443, "google", "https"),
        (STORAGE_HOST, 443, "storage", "grpc"),
        (SNOWFLAKE_HOST, 443, "snowflake", "https"),
        (STAGE_HOST, 443, "chunks", "https"),
        ("ocsp.snowflakecomputing.com", 80, "snowflake", "http"),
        ("crl.lab-ca.test", 80, "snowflake", "http"),
        ("sts.amazonaws.com", 443, "google", "https"),
        ("sts.eu-central-1.amazonaws.com", 443, "google", "https"),
    ]
    hosts = [
        Host(name, port, f"127.0.3.{index}", backend, kind)
        for index, (name, port, backend, kind) in enumerate(names, start=1)
    ]
    # The metadata server answers on its link-local address, under both its names.
    hosts.append(Host(METADATA_IP, 80, METADATA_IP, "google", "http"))
    return tuple(hosts)


HOSTS: Final = _hosts()
NAMES: Final = {host.name: host.address for host in HOSTS} | {
    "metadata.google.internal": METADATA_IP,
    "metadata": METADATA_IP,
}
"""Name → address, for /etc/hosts and Squid's hosts_file."""


# -- the metadata server (GCE; AWS and Azure probes get 404) -----------------------------

_FLAVOR = {"Metadata-Flavor": "Google"}


def _metadata(value: Any) -> Any:
    def answer(request: Request, match: re.Match[str]) -> Response:
        if request.headers.get("metadata-flavor") != "Google":
            return Response({"error": "missing Metadata-Flavor"}, 403)
        return Response(value, headers=_FLAVOR)

    return answer


def metadata_routes() -> list[Route]:
    """The GCE metadata paths google-auth asks for (ADC, project, universe, token)."""
    base = "/computeMetadata/v1"
    account = {
        "email": SERVICE_ACCOUNT,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    token = {"access_token": "ya29.gce-token", "expires_in": 3600, "token_type": "Bearer"}
    return [
        route("GET", "/", _metadata({})),
        route("GET", f"{base}/project/project-id", _metadata("carto-test")),
        route("GET", f"{base}/universe/universe-domain", _metadata("googleapis.com")),
        route("GET", f"{base}/instance/service-accounts/default/?", _metadata(account)),
        route("GET", f"{base}/instance/service-accounts/default/token", _metadata(token)),
    ]


@dataclass(frozen=True, slots=True)
class StandIns:
    """The running stand-ins, by backend name: ``(host, port)`` to relay to."""

    backends: dict[str, tuple[str, int]]
    google: FakeHTTPServer
    snowflake: FakeHTTPServer


@contextlib.contextmanager
def start_standins(pki: PKI) -> Iterator[StandIns]:
    """Start every stand-in; stop them all on exit."""
    google_routes = [*bigquery_routes(), *token_routes(), *metadata_routes()]
    with (
        FakeHTTPServer(google_routes, ca=pki.origin_ca, name="google") as google,
        GrpcServer(pki.origin_ca, bigquery_storage=True, names=(STORAGE_HOST,)) as storage,
        LocalOrigin(host="127.0.0.1", ca=pki.origin_ca) as chunks,
    ):
        body = gzipped_chunk()
        chunks.respond_with(lambda request: (200, {"Content-Type": "binary/octet-stream"}, body))
        snowflake = start_fake_snowflake(ca=pki.origin_ca, chunk_url=CHUNK_URL)
        try:
            yield StandIns(
                backends={
                    "google": ("127.0.0.1", google.port),
                    "storage": ("127.0.0.1", storage.tls_port),
                    "snowflake": ("127.0.0.1", snowflake.port),
                    "chunks": ("127.0.0.1", chunks.port),
                },
                google=google,
                snowflake=snowflake,
            )
        finally:
            snowflake.stop()
