"""The suite's gRPC server: the testing kit's GrpcOrigin with a health check, an echo and a
BigQuery Storage read stand-in.

It listens on two ports, plaintext and TLS (signed by the session's origin CA, for
``localhost``, ``127.0.0.1`` and the test hosts), and records every call with its method and
metadata, so tests can tell that a call arrived and with which credentials.

The health check and echo answer raw bytes, so no generated stubs (and no
``grpcio-health-checking``) are needed: a ``HealthCheckResponse{status: SERVING}`` is the two
bytes ``08 01``. The BigQuery Storage stand-in uses ``google-cloud-bigquery-storage``'s message
types and ``pyarrow``, imported only when it is enabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import grpc

from carto_proxy.testing import GrpcOrigin
from tests.support.names import ORIGIN_CERT_NAMES

HEALTH_CHECK: Final = "/grpc.health.v1.Health/Check"
ECHO: Final = "/carto_proxy.test.Echo/Echo"
SERVING: Final = b"\x08\x01"
"""A serialised ``grpc.health.v1.HealthCheckResponse`` with ``status = SERVING``."""

BQ_READ_SERVICE: Final = "google.cloud.bigquery.storage.v1.BigQueryRead"
READ_SESSION_NAME: Final = "projects/p/locations/us/sessions/s1"
READ_STREAM_NAME: Final = f"{READ_SESSION_NAME}/streams/0"
READ_ROWS: Final = ({"n": 1, "word": "carto"}, {"n": 2, "word": "proxy"})
"""What the stand-in's single read stream holds."""


class GrpcServer(GrpcOrigin):
    """A GrpcOrigin answering the health check and the echo; use as a context manager.

    Args:
        ca: the ``trustme.CA`` that signs its TLS certificate (the session's origin CA).
        bigquery_storage: also serve the BigQuery Storage read stand-in.
        names: more names for its certificate (the real Storage host, in the lab).
    """

    def __init__(
        self, ca: Any, *, bigquery_storage: bool = False, names: tuple[str, ...] = ()
    ) -> None:
        handlers = [_bigquery_read_handler()] if bigquery_storage else []
        cert_names = (*ORIGIN_CERT_NAMES, *names)
        super().__init__(names=cert_names, ca=ca, handlers=handlers, host="127.0.0.1")
        self.reply(HEALTH_CHECK, SERVING)
        self.reply(ECHO, lambda request: request)


def health_check(channel: Any, *, timeout: float = 5.0) -> bytes:
    """Call ``grpc.health.v1.Health/Check`` on *channel*; return the raw response."""
    check = channel.unary_unary(HEALTH_CHECK)
    return bytes(check(b"", timeout=timeout))


async def health_check_async(channel: Any, *, timeout: float = 5.0) -> bytes:
    """The same, on a ``grpc.aio`` channel."""
    check = channel.unary_unary(HEALTH_CHECK)
    return bytes(await check(b"", timeout=timeout))


# -- BigQuery Storage read stand-in ------------------------------------------------------


def _bigquery_read_handler() -> grpc.GenericRpcHandler:
    """``CreateReadSession`` → one Arrow stream; ``ReadRows`` → :data:`READ_ROWS` in one batch."""
    import pyarrow
    from google.cloud.bigquery_storage_v1 import types

    table = pyarrow.Table.from_pylist(list(READ_ROWS))
    schema_bytes = table.schema.serialize().to_pybytes()
    batch_bytes = table.to_batches()[0].serialize().to_pybytes()

    def create_read_session(request: Any, context: grpc.ServicerContext) -> Any:
        return types.ReadSession(
            name=READ_SESSION_NAME,
            table=request.read_session.table,
            data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=schema_bytes),
            streams=[types.ReadStream(name=READ_STREAM_NAME)],
        )

    def read_rows(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if request.read_stream != READ_STREAM_NAME:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no stream {request.read_stream!r}")
        yield types.ReadRowsResponse(
            arrow_record_batch=types.ArrowRecordBatch(
                serialized_record_batch=batch_bytes, row_count=len(READ_ROWS)
            ),
            row_count=len(READ_ROWS),
            # Readers that are not given the session take the schema from the first response.
            arrow_schema=types.ArrowSchema(serialized_schema=schema_bytes),
        )

    return grpc.method_handlers_generic_handler(
        BQ_READ_SERVICE,
        {
            "CreateReadSession": grpc.unary_unary_rpc_method_handler(
                create_read_session,
                request_deserializer=types.CreateReadSessionRequest.deserialize,
                response_serializer=types.ReadSession.serialize,
            ),
            "ReadRows": grpc.unary_stream_rpc_method_handler(
                read_rows,
                request_deserializer=types.ReadRowsRequest.deserialize,
                response_serializer=types.ReadRowsResponse.serialize,
            ),
        },
    )
