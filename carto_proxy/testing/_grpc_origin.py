"""GrpcOrigin: a loopback gRPC server, plaintext and TLS, that records every call.

:class:`LocalOrigin`'s counterpart for gRPC, so that a connector test can send a call through
a :class:`RecordingProxy` (``upstreams=``) or direct and see it arrive::

    with GrpcOrigin(names=["api.example.com"]) as origin:
        origin.reply("/demo.Echo/Ping", b"pong")
        ...  # trust origin.ca_pem, call api.example.com:<origin.tls_port>

Methods set with :meth:`GrpcOrigin.reply` are unary and answer raw bytes, so no generated code
is needed; typed services are added as ``grpc`` generic handlers. Every call is recorded
(:class:`GrpcCall`), answered or not.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from carto_proxy.exceptions import MissingExtraError

__all__ = ["GrpcCall", "GrpcOrigin"]

_STOP_GRACE = 0.5  # seconds in-flight calls get when the origin stops
_Answer = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcCall:
    """One call :class:`GrpcOrigin` received.

    Attributes:
        method: the full method name, ``/package.Service/Method``.
        metadata: the call's metadata (``authorization``, ``x-goog-request-params``...);
            a key sent twice keeps its last value. Left out of the ``repr``, as it may carry
            credentials.
    """

    method: str
    metadata: Mapping[str, str] = field(repr=False)


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(extra, module) from error


class GrpcOrigin:
    """Answer gRPC calls on two loopback ports: plaintext (:attr:`port`) and TLS (:attr:`tls_port`).

    Args:
        names: host names its certificate holds, besides ``localhost``, ``127.0.0.1`` and
            ``::1``: the names clients will dial (gRPC has no SNI to make one on the fly).
        ca: the ``trustme.CA`` that signs its certificate, when your tests already trust one
            (a :class:`LocalOrigin` made with the same ``ca=``); by default its own.
        handlers: ``grpc.GenericRpcHandler`` objects for typed services.
        host: loopback address to listen on.

    Raises:
        MissingExtraError: ``grpcio`` (extra ``grpc``) or ``trustme`` (extra ``testing``)
            is not installed.
    """

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        ca: Any = None,
        handlers: Iterable[Any] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self._grpc = _import("grpc", "grpc")
        trustme = _import("trustme", "testing")
        self._ca = trustme.CA() if ca is None else ca
        self._leaf = self._ca.issue_cert("localhost", "127.0.0.1", "::1", *names)
        self._host = host
        self._handlers = list(handlers)
        self._lock = threading.Lock()
        self._calls: list[GrpcCall] = []
        self._replies: dict[str, _Answer] = {}
        self._server: Any = None
        self._ports: tuple[int, int] | None = None
        self._used = False

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> GrpcOrigin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> GrpcOrigin:
        """Listen on both ports and start answering; return this origin.

        Raises:
            RuntimeError: it was already started (an origin runs once).
        """
        if self._used:
            raise RuntimeError("a GrpcOrigin runs once; make a new one")
        self._used = True
        grpc = self._grpc
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="GrpcOrigin"),
            interceptors=[_Recorder(self._record)],
        )
        server.add_generic_rpc_handlers([_Replies(grpc, self._reply_for), *self._handlers])
        where = f"[{self._host}]" if ":" in self._host else self._host
        plain = server.add_insecure_port(f"{where}:0")
        chain = b"".join(blob.bytes() for blob in self._leaf.cert_chain_pems)
        key = bytes(self._leaf.private_key_pem.bytes())
        tls = server.add_secure_port(f"{where}:0", grpc.ssl_server_credentials([(key, chain)]))
        server.start()
        self._server, self._ports = server, (plain, tls)
        return self

    def stop(self) -> None:
        """Stop serving: in-flight calls get half a second, then are cancelled; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=_STOP_GRACE).wait(_STOP_GRACE + 1.0)

    # --- where it listens and whom to trust ---------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The plaintext port (``RuntimeError`` before :meth:`start`)."""
        return self._started()[0]

    @property
    def tls_port(self) -> int:
        """The TLS port, signed by :attr:`ca_pem` (``RuntimeError`` before :meth:`start`)."""
        return self._started()[1]

    @property
    def ca_pem(self) -> str:
        """The PEM text of the CA that signs its certificate.

        gRPC takes bytes: ``grpc.ssl_channel_credentials(origin.ca_pem.encode())``.
        """
        return str(self._ca.cert_pem.bytes().decode("ascii"))

    def _started(self) -> tuple[int, int]:
        if self._ports is None:
            raise RuntimeError("GrpcOrigin is not started; call start() first")
        return self._ports

    # --- what it answers and what it saw ------------------------------------------------------

    def reply(self, method: str, answer: bytes | _Answer) -> None:
        """Answer unary calls to *method* (``/package.Service/Method``) with raw bytes.

        Args:
            method: the full method name.
            answer: the response bytes, or a function of the request bytes returning them.
        """
        respond = answer if callable(answer) else lambda _request, fixed=answer: fixed
        with self._lock:
            self._replies[method] = respond

    @property
    def calls(self) -> list[GrpcCall]:
        """Every call received so far, in order (an unknown method's included)."""
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        """Forget the calls recorded so far (the replies and handlers stay)."""
        with self._lock:
            self._calls.clear()

    def _record(self, call: GrpcCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _reply_for(self, method: str) -> _Answer | None:
        with self._lock:
            return self._replies.get(method)

    def __repr__(self) -> str:
        where = "not started" if self._ports is None else f"{self._host}:{self._ports}"
        return f"<GrpcOrigin {where} calls={len(self.calls)}>"


# grpc takes any object with these methods (duck typing), so the classes need no grpc import.
class _Recorder:
    """A server interceptor recording every call before it is handled."""

    def __init__(self, record: Callable[[GrpcCall], None]) -> None:
        self._record = record

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        metadata = {key: str(value) for key, value in details.invocation_metadata or ()}
        self._record(GrpcCall(method=details.method, metadata=metadata))
        return continuation(details)


class _Replies:
    """A generic handler answering the methods set with :meth:`GrpcOrigin.reply`."""

    def __init__(self, grpc: Any, reply_for: Callable[[str], _Answer | None]) -> None:
        self._grpc = grpc
        self._reply_for = reply_for

    def service(self, details: Any) -> Any:
        answer = self._reply_for(details.method)
        if answer is None:
            return None  # the next handler, else UNIMPLEMENTED
        return self._grpc.unary_unary_rpc_method_handler(lambda request, _: answer(request))
