"""A local gRPC server on 127.0.0.1: health check, echo, and a BigQuery Storage read stand-in.

One server listens on two ports: plaintext and TLS (the origin certificate, which names
``localhost``, ``127.0.0.1`` and the test hosts). Every call is recorded with its method, peer and
metadata, so tests can tell that a call arrived and with which credentials.

The services are registered with generic handlers on raw bytes, so no generated stubs (and no
``grpcio-health-checking``) are needed: a ``HealthCheckResponse{status: SERVING}`` is the two
bytes ``08 01``. The BigQuery Storage stand-in uses ``google-cloud-bigquery-storage``'s message
types and ``pyarrow``, imported only when it is enabled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import grpc

from tests.support.names import LOOPBACK
from tests.support.pki import ServerCert

HEALTH_CHECK: Final = "/grpc.health.v1.Health/Check"
ECHO: Final = "/carto_proxy.test.Echo/Echo"
SERVING: Final = b"\x08\x01"
"""A serialised ``grpc.health.v1.HealthCheckResponse`` with ``status = SERVING``."""

BQ_READ_SERVICE: Final = "google.cloud.bigquery.storage.v1.BigQueryRead"
READ_SESSION_NAME: Final = "projects/p/locations/us/sessions/s1"
READ_STREAM_NAME: Final = f"{READ_SESSION_NAME}/streams/0"
READ_ROWS: Final = ({"n": 1, "word": "carto"}, {"n": 2, "word": "proxy"})
"""What the stand-in's single read stream holds."""

_STOP_GRACE: Final = 1.0


@dataclass(frozen=True, slots=True)
class Call:
    """One RPC the server answered."""

    method: str
    peer: str
    metadata: dict[str, str]


class GrpcServer:
    """A threaded gRPC server with a plaintext and a TLS port; use as a context manager."""

    def __init__(self, cert: ServerCert, *, bigquery_storage: bool = False) -> None:
        self._cert = cert
        self._bigquery_storage = bigquery_storage
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._server: Any = None
        self.port = 0
        """The plaintext port."""
        self.tls_port = 0
        """The TLS port (origin certificate)."""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> GrpcServer:
        """Bind both ports on 127.0.0.1 and start serving; return self."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = [_generic(self._record, "grpc.health.v1.Health", {"Check": _health})]
        handlers.append(_generic(self._record, "carto_proxy.test.Echo", {"Echo": _echo}))
        if self._bigquery_storage:
            handlers.append(_bigquery_read_handler(self._record))
        server.add_generic_rpc_handlers(handlers)
        self.port = server.add_insecure_port(f"{LOOPBACK}:0")
        credentials = grpc.ssl_server_credentials(
            [(self._cert.key_path.read_bytes(), self._cert.cert_path.read_bytes())]
        )
        self.tls_port = server.add_secure_port(f"{LOOPBACK}:0", credentials)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving; in-flight calls get one second, then are cancelled."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=_STOP_GRACE).wait(_STOP_GRACE + 5)

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the call log --------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call answered since start (or the last :meth:`clear`)."""
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        """Forget the recorded calls."""
        with self._lock:
            self._calls.clear()

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        with self._lock:
            self._calls.append(Call(method, context.peer(), metadata))


_Behaviour = Callable[[bytes, grpc.ServicerContext], Any]


def _generic(
    record: Callable[[str, grpc.ServicerContext], None],
    service: str,
    methods: dict[str, _Behaviour],
) -> grpc.GenericRpcHandler:
    def wrap(name: str, behaviour: _Behaviour) -> grpc.RpcMethodHandler:
        def handle(request: bytes, context: grpc.ServicerContext) -> Any:
            record(f"/{service}/{name}", context)
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(handle)

    return grpc.method_handlers_generic_handler(
        service, {name: wrap(name, behaviour) for name, behaviour in methods.items()}
    )


def _health(request: bytes, context: grpc.ServicerContext) -> bytes:
    return SERVING


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def health_check(channel: Any, *, timeout: float = 5.0) -> bytes:
    """Call ``grpc.health.v1.Health/Check`` on *channel*; return the raw response."""
    check = channel.unary_unary(HEALTH_CHECK)
    return bytes(check(b"", timeout=timeout))


async def health_check_async(channel: Any, *, timeout: float = 5.0) -> bytes:
    """The same, on a ``grpc.aio`` channel."""
    check = channel.unary_unary(HEALTH_CHECK)
    return bytes(await check(b"", timeout=timeout))


# -- BigQuery Storage read stand-in ------------------------------------------------------


def _bigquery_read_handler(
    record: Callable[[str, grpc.ServicerContext], None],
) -> grpc.GenericRpcHandler:
    """``CreateReadSession`` → one Arrow stream; ``ReadRows`` → :data:`READ_ROWS` in one batch."""
    import pyarrow
    from google.cloud.bigquery_storage_v1 import types

    table = pyarrow.Table.from_pylist(list(READ_ROWS))
    schema_bytes = table.schema.serialize().to_pybytes()
    batch_bytes = table.to_batches()[0].serialize().to_pybytes()

    def create_read_session(request: Any, context: grpc.ServicerContext) -> Any:
        record(f"/{BQ_READ_SERVICE}/CreateReadSession", context)
        return types.ReadSession(
            name=READ_SESSION_NAME,
            table=request.read_session.table,
            data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=schema_bytes),
            streams=[types.ReadStream(name=READ_STREAM_NAME)],
        )

    def read_rows(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        record(f"/{BQ_READ_SERVICE}/ReadRows", context)
        if request.read_stream != READ_STREAM_NAME:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no stream {request.read_stream!r}")
        yield types.ReadRowsResponse(
            arrow_record_batch=types.ArrowRecordBatch(
                serialized_record_batch=batch_bytes, row_count=len(READ_ROWS)
            ),
            row_count=len(READ_ROWS),
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
