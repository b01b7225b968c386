"""Run a real, recording HTTP forward proxy on loopback for tests.

The proxy tunnels ``CONNECT host:port`` and forwards absolute-form ``http://`` requests, plain
or over TLS, records each one as a :class:`ProxyRecord`, sends real host names to local fakes
(``upstreams=``) and injects faults on demand. It connects only to loopback addresses and to
the mapped upstreams, and never resolves a name to decide::

    upstreams = {"api.example.com:443": ("127.0.0.1", origin_port)}
    with RecordingProxy(upstreams=upstreams) as proxy:
        httpx.Client(proxy=proxy.url, verify=origin_ctx).get("https://api.example.com/")
        (tunnel,) = proxy.wait_for(1)  # one finished record
        assert tunnel.authority == "api.example.com:443" and tunnel.status == 200
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Mapping

from carto_proxy.exceptions import MissingExtraError
from carto_proxy.testing._faults import Faults
from carto_proxy.testing._loopback import LoopbackServer
from carto_proxy.testing._proxy_records import ProxyRecord, RecordBook
from carto_proxy.testing._proxying import Proxying
from carto_proxy.testing._upstreams import Upstreams, key_of, loopback_literal

__all__ = ["ProxyRecord", "RecordingProxy"]


class RecordingProxy(LoopbackServer):
    """Run a recording HTTP forward proxy on loopback for the duration of a test.

    The proxy tunnels ``CONNECT`` and forwards absolute-form ``http://`` requests (keep-alive
    towards the client, one ``Connection: close`` upstream connection per request). It only
    connects to loopback literals (``127.0.0.0/8``, ``::1``, ``localhost`` as ``127.0.0.1``)
    and to ``upstreams``; anything else is answered ``403`` and recorded with an error. Use it
    as a context manager or call :meth:`start` and :meth:`stop`; it runs once.

    HTTP/1.1 is parsed by h11. A request whose framing is in doubt (h11 refuses it, or it
    carries both ``Transfer-Encoding`` and ``Content-Length``) is answered ``400`` and its
    connection closed, so nothing in it is run as another request. Heads are limited to
    64 KiB and 100 fields. Bodies are streamed: one of any size costs at most about 1 MiB of
    memory (a chunked one is sent upstream with a ``Content-Length``, spooled to a temporary
    file beyond 1 MiB). The records and TLS errors are bounded (:attr:`records`).

    Args:
        host: loopback address to listen on, ``"127.0.0.1"`` or ``"::1"``.
        port: port to listen on; ``0`` picks a free one.
        tls: serve the proxy itself over TLS, with a certificate for ``localhost``,
            ``127.0.0.1`` and ``::1`` from a CA made for this proxy (needs ``trustme``).
        upstreams: where to connect instead, keyed ``"host:port"`` (that port only) or
            ``"host"`` (any port), valued ``(ip or "localhost", port)``; names are never
            resolved.
        timeout: seconds allowed for upstream connects and reads and for TLS handshakes.

    Raises:
        ValueError: ``host`` is not a loopback address, or an upstream cannot be parsed.
        MissingExtraError: ``tls=True`` and ``trustme`` is not installed.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        upstreams: Mapping[str, tuple[str, int]] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if host == "localhost" or loopback_literal(host) is None:
            raise ValueError(f"host={host!r}: RecordingProxy listens on a loopback address only")
        super().__init__(
            host=host,
            port=port,
            serve=self._serve,
            name="RecordingProxy",
            backlog=1024,  # deep, so that 100 simultaneous connects all land
            ca_owner="a RecordingProxy(tls=True)",
        )
        self._tls = tls
        self._faults = Faults()
        self._book = RecordBook()
        server_ctx: ssl.SSLContext | None = None
        self._ca_pem: str | None = None
        if tls:
            server_ctx, self._ca_pem = _make_tls()
        self._proxying = Proxying(
            server=self._server,
            book=self._book,
            faults=self._faults,
            upstreams=Upstreams(upstreams or {}),
            timeout=timeout,
            tls=server_ctx,
        )

    def _ca_to_write(self) -> str | None:
        return self._ca_pem

    # --- where it listens -----------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        """Whether clients must speak TLS to the proxy."""
        return self._tls

    @property
    def scheme(self) -> str:
        """``"https"`` for a TLS proxy, else ``"http"``."""
        return "https" if self._tls else "http"

    @property
    def url(self) -> str:
        """The proxy URL to give clients: ``http://127.0.0.1:PORT``, ``https://localhost:PORT``.

        A TLS proxy on ``127.0.0.1`` is named ``localhost``, the name its certificate is for;
        IPv6 addresses are bracketed.
        """
        host = "localhost" if self._tls and self._host == "127.0.0.1" else self._host
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ca_pem(self) -> str:
        """The PEM text of the CA that signed a TLS proxy's certificate.

        Raises:
            RuntimeError: the proxy does not use TLS.
        """
        if self._ca_pem is None:
            raise RuntimeError("ca_pem exists only for RecordingProxy(tls=True)")
        return self._ca_pem

    @property
    def ca_file(self) -> str:
        """A PEM file holding :attr:`ca_pem`, e.g. for ``NODE_EXTRA_CA_CERTS``; removed at stop.

        Raises:
            RuntimeError: the proxy does not use TLS or is not running.
        """
        return self._ca_file.path

    def __repr__(self) -> str:
        where = self.url if self._server.port is not None else "not started"
        count = self._book.count()
        return f"<RecordingProxy {where} tls={self._tls} records={count}>"

    # --- what it saw ----------------------------------------------------------------------------

    @property
    def records(self) -> list[ProxyRecord]:
        """Every tunnel and request so far, in start order (snapshots).

        The proxy keeps the latest 100,000; beyond, the oldest finished one is forgotten for
        each new one. :meth:`clear` drains them.
        """
        return self._book.records()

    @property
    def tunnels(self) -> list[ProxyRecord]:
        """The ``CONNECT`` records, in start order."""
        return [record for record in self.records if record.method == "CONNECT"]

    @property
    def tls_errors(self) -> list[str]:
        """Failed TLS handshakes with clients, e.g. a client that refused the certificate.

        The latest 1,000 are kept; :meth:`clear` drains them.
        """
        return self._book.tls_errors()

    def seen(self, host_or_authority: str) -> list[ProxyRecord]:
        """Return the records for a host (any port, case-insensitive) or an exact ``host:port``.

        Args:
            host_or_authority: ``"api.example.com"``, ``"api.example.com:443"``, ``"[::1]:8443"``.
        """
        host, port = key_of(host_or_authority)
        return [
            record
            for record in self.records
            if record.host == host and (port is None or record.port == port)
        ]

    def clear(self) -> None:
        """Forget every record and TLS error so far (tunnels still open are no longer tracked)."""
        self._book.clear()

    def wait_for(
        self,
        condition: int | Callable[[list[ProxyRecord]], bool],
        *,
        timeout: float = 5.0,
    ) -> list[ProxyRecord]:
        """Wait until the records satisfy ``condition``; return them.

        Args:
            condition: a count ``n`` — at least ``n`` records have finished (``end`` is set) —
                or a predicate called with the records after every change.
            timeout: seconds to wait at most.

        Returns:
            All records, as they were when ``condition`` held.

        Raises:
            TimeoutError: ``condition`` did not hold within ``timeout``.
            ValueError: ``n`` is more than the 100,000 records a proxy keeps.
        """
        return self._book.wait_for(condition, timeout)

    def wait_for_tls_errors(self, count: int = 1, *, timeout: float = 5.0) -> list[str]:
        """Wait until at least ``count`` TLS handshakes have failed; return their errors.

        Raises:
            TimeoutError: fewer failed within ``timeout``.
            ValueError: ``count`` is more than the 1,000 errors a proxy keeps.
        """
        return self._book.wait_for_tls_errors(count, timeout)

    # --- faults ---------------------------------------------------------------------------------

    def refuse(self, host: str, status: int = 403) -> None:
        """Answer ``status`` to every tunnel or request for ``host`` (or ``host:port``).

        Raises:
            ValueError: ``status`` is not a 4xx or 5xx status.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status={status}: refuse with a 4xx or 5xx status")
        self._faults.refuse(key_of(host), status)

    def fail_upstream(self, host: str) -> None:
        """Answer ``502`` for ``host`` (or ``host:port``), as if its upstream were down."""
        self._faults.fail(key_of(host))

    def close_mid_tunnel(self, host: str, after_bytes: int = 0) -> None:
        """Establish tunnels to ``host`` (or ``host:port``), then close them.

        Args:
            host: the host or ``host:port`` whose tunnels to cut.
            after_bytes: payload bytes relayed (both directions together) before closing.
        """
        if after_bytes < 0:
            raise ValueError(f"after_bytes={after_bytes}: give 0 or more")
        self._faults.cut(key_of(host), after_bytes)

    def add_latency(self, seconds: float, host: str | None = None) -> None:
        """Wait ``seconds`` before answering tunnels and requests for ``host`` (or for all).

        A delay set for a host wins over the one set for all hosts; ``stop()`` cuts it short.
        """
        if seconds < 0:
            raise ValueError(f"seconds={seconds}: give 0 or more")
        self._faults.latency(None if host is None else key_of(host), seconds)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def _serve(self, conn: socket.socket, client: tuple[str, int]) -> None:
        # The server is made before the Proxying that holds it, so it calls through here.
        self._proxying.serve(conn, client)


def _make_tls() -> tuple[ssl.SSLContext, str]:
    """Make a CA for this proxy and a server context with its certificate for loopback names."""
    try:
        import trustme
    except ImportError as exc:
        raise MissingExtraError("testing", "trustme") from exc
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
    return context, str(ca.cert_pem.bytes().decode("ascii"))
