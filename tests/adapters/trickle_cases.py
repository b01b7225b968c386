"""Issue 15, B4: a proxy that trickles its answers cannot stretch a client's timeout.

:class:`TricklingRelay` sits in front of a real :class:`~carto_proxy.testing.RecordingProxy`
(plain or TLS) and passes what the proxy sends back one byte every half second: the TLS
handshake of an ``https://`` proxy and the answer to CONNECT arrive, but so slowly that no read
ever times out. Each adapter's test module subclasses :class:`TrickleCases` with its ``driver``
(see :mod:`tests.adapters.http_cases`); drivers pass ``proxy_handshake_timeout`` to the adapter.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from carto_proxy.testing import RecordingProxy
from tests.adapters.http_cases import (
    SHORT_TIMEOUT,
    TIMEOUT,
    Driver,
    error_text,
    make_config,
    make_hostile,
)
from tests.support.names import LOOPBACK
from tests.support.origins import Origins
from tests.support.pki import PKI

TRICKLE_INTERVAL = 0.5
"""Seconds between two bytes sent back to the client."""
RELAY_LIFETIME = 15.0
"""No relayed connection lives longer, whatever the client does."""


class TricklingRelay:
    """A TCP relay on loopback to *upstream*: client bytes go up at once, the answers come back
    one byte every :data:`TRICKLE_INTERVAL` seconds. Stops by itself after each connection's
    :data:`RELAY_LIFETIME`, and at once on :meth:`stop`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server((LOOPBACK, 0))
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.port = int(self._listener.getsockname()[1])
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._upstream, timeout=TIMEOUT)
            for sock in (client, upstream):
                self._keep(sock)
            self._spawn(self._pump, client, upstream)
            self._spawn(self._trickle, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.1)
        deadline = time.monotonic() + RELAY_LIFETIME
        while not self._stopped.is_set() and time.monotonic() < deadline:
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            with contextlib.suppress(OSError):
                sink.sendall(data)

    def _trickle(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.1)
        pending = b""
        deadline = time.monotonic() + RELAY_LIFETIME
        while not self._stopped.is_set() and time.monotonic() < deadline:
            if not pending:
                try:
                    pending = source.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not pending:
                    return
            try:
                sink.sendall(pending[:1])
            except OSError:
                return
            pending = pending[1:]
            self._stopped.wait(TRICKLE_INTERVAL)

    def stop(self) -> None:
        """Close every socket and join every thread."""
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            sock.close()
        for thread in threads:
            thread.join(TIMEOUT)


@contextlib.contextmanager
def trickling_proxy(*, tls: bool) -> Iterator[str]:
    """A RecordingProxy (plain or TLS) behind a :class:`TricklingRelay`: the URL to give
    clients."""
    with RecordingProxy(tls=tls, timeout=TIMEOUT) as proxy:
        relay = TricklingRelay((LOOPBACK, proxy.port))
        try:
            yield f"{proxy.scheme}://{LOOPBACK}:{relay.port}"
        finally:
            relay.stop()


@pytest.mark.integration
class TrickleCases:
    """The attack, against each adapter; a subclass provides the ``driver`` fixture."""

    @pytest.fixture(autouse=True)
    def hostile_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        make_hostile(monkeypatch)

    @pytest.mark.parametrize("tls", [False, True], ids=["plain-proxy", "tls-proxy"])
    def test_trickling_proxy_cannot_stretch_the_connect_timeout(
        self, driver: Driver, pki: PKI, origins: Origins, tls: bool, fake_dns: object
    ) -> None:
        with trickling_proxy(tls=tls) as url:
            config = make_config(url, pki.origin_ca_path, verify_proxy=False)
            started = time.monotonic()
            with (
                driver.client(config, timeout=SHORT_TIMEOUT) as client,
                pytest.raises(driver.error) as failure,
            ):
                client.get(origins.https.url_for("127.0.0.1", "/trickled"))
            elapsed = time.monotonic() - started
        # Without a bound on the whole handshake each byte restarts the read timeout: the
        # CONNECT answer alone (39 bytes) would take 20 s.
        assert elapsed < SHORT_TIMEOUT * driver.attempts + 1.5
        text = error_text(failure.value)
        assert "proxy handshake" in text
        assert f"through the proxy {url} (HTTPS_PROXY), rule proxy]" in text

    def test_proxy_handshake_timeout_is_its_own_bound(
        self, driver: Driver, pki: PKI, origins: Origins, fake_dns: object
    ) -> None:
        with trickling_proxy(tls=False) as url:
            config = make_config(url, pki.origin_ca_path)
            started = time.monotonic()
            with (
                driver.client(config, timeout=TIMEOUT, proxy_handshake_timeout=0.5) as client,
                pytest.raises(driver.error) as failure,
            ):
                client.get(origins.https.url_for("127.0.0.1", "/trickled"))
            elapsed = time.monotonic() - started
        assert elapsed < 0.5 * driver.attempts + 1.5
        assert "within 0.5 s (proxy_handshake_timeout)" in error_text(failure.value)
