"""The lab's network: real names on loopback, taps that see every connection, a DNS logger.

Each real host name (``bigquery.googleapis.com``…) gets an address of its own in 127.0.3.0/24,
and the metadata server its real one, ``169.254.169.254``, added to ``lo``; the names go into
an ``/etc/hosts`` that the scenario processes see through a mount namespace. On each name's
real port a :class:`Tap` accepts the connection, records who made it, and relays the bytes to
the stand-in serving that name.

Who made a connection is told by its source address: the ProxyConfig's Squid connects from
``CONFIG_SOURCE`` and the environment's Squid from ``ENV_SOURCE`` (``tcp_outgoing_address``),
while a client that connects itself uses the kernel's default source. That works whatever
code opened the connection: Python, gRPC's C core or Snowflake's Rust core.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from tests.support.polling import first_match

METADATA_IP: Final = "169.254.169.254"
CONFIG_SOURCE: Final = "127.0.1.1"
ENV_SOURCE: Final = "127.0.1.2"
_SENTINEL_SOURCE: Final = "127.0.9.9"

CONFIG_PROXY_NAME: Final = "my-proxy"  # CARTO's examples call the proxy that
CONFIG_PROXY_IP: Final = "127.0.2.1"
ENV_PROXY_NAME: Final = "env-proxy"
ENV_PROXY_IP: Final = "127.0.2.2"

VIA_CONFIG: Final = "config proxy"
VIA_ENV: Final = "environment's proxy"
DIRECT: Final = "direct"


def private_network_namespace() -> bool:
    """Whether this process's network namespace has no interface but loopback (no way out).

    ``unshare -n`` makes such a namespace; the machine's own always has another interface.
    """
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@contextlib.contextmanager
def metadata_address() -> Iterator[None]:
    """Add ``169.254.169.254/32`` to ``lo`` (this private namespace only) while in the block."""
    if not private_network_namespace():  # never on the machine's own interfaces
        raise RuntimeError("refusing to add an address outside a private network namespace")
    command = ["ip", "addr", "add", f"{METADATA_IP}/32", "dev", "lo"]
    subprocess.run(command, check=True, capture_output=True, timeout=10)
    try:
        yield
    finally:
        command[2] = "del"
        subprocess.run(command, check=False, capture_output=True, timeout=10)


@dataclass(frozen=True, slots=True)
class Connection:
    """One connection a tap accepted."""

    name: str
    """The host name the tap stands for (the proxy's name for a proxy tap)."""
    port: int
    via: str
    """``VIA_CONFIG``, ``VIA_ENV`` or ``DIRECT``: who opened it (for a proxy tap: the client)."""

    @property
    def authority(self) -> str:
        """``name:port``."""
        return f"{self.name}:{self.port}"


def _via(source: str) -> str:
    return {CONFIG_SOURCE: VIA_CONFIG, ENV_SOURCE: VIA_ENV}.get(source, DIRECT)


class Tap:
    """Listen on ``address:port``, record each connection, relay it to *backend*."""

    def __init__(self, name: str, address: str, port: int, backend: tuple[str, int]) -> None:
        self.name, self.address, self.port, self.backend = name, address, port, backend
        self._listener = socket.create_server((address, port), backlog=128)
        self._lock = threading.Lock()
        self._records: list[tuple[str, int]] = []  # (source address, source port)
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name=f"tap-{name}", daemon=True)
        self._accepting.start()

    def connections(self) -> list[Connection]:
        """What was accepted so far, sentinels left out."""
        with self._lock:
            records = list(self._records)
        return [
            Connection(self.name, self.port, _via(source))
            for source, _ in records
            if source != _SENTINEL_SOURCE
        ]

    def clear(self) -> None:
        """Forget the connections recorded so far."""
        with self._lock:
            self._records.clear()

    def settle(self, timeout: float = 5.0) -> None:
        """Return once every connection made before the call has been accepted and recorded.

        A listener's backlog is first in, first out: a sentinel connection accepted means every
        earlier one was.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sentinel:
            sentinel.settimeout(timeout)
            sentinel.bind((_SENTINEL_SOURCE, 0))
            sentinel.connect((self.address, self.port))
            mark = (_SENTINEL_SOURCE, sentinel.getsockname()[1])
            first_match(
                lambda: self._snapshot(),
                lambda record: record == mark,
                timeout,
                failure=lambda: f"tap {self.name}:{self.port} did not accept its sentinel",
            )

    def _snapshot(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._records)

    def _accept(self) -> None:
        while True:
            try:
                client, (source, source_port, *_) = self._listener.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                self._records.append((source, source_port))
            if source == _SENTINEL_SOURCE:
                client.close()
                continue
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.backend, timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets |= {client, upstream}
        pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        pump.start()
        _pump(client, upstream)
        pump.join(timeout=30)
        for sock in (client, upstream):
            sock.close()
        with self._lock:
            self._sockets -= {client, upstream}

    def stop(self) -> None:
        """Close the listener and every relayed connection; join the threads (bounded)."""
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        for thread in [self._accepting, *self._threads]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy *source* to *sink* until end of stream, then half-close *sink*."""
    source.settimeout(60)
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class DNSLog:
    """A UDP server on ``127.0.0.1:53`` that records each name asked for and refuses it.

    The scenario processes' ``/etc/resolv.conf`` names it: every lab name is in their
    ``/etc/hosts``, so a query here is a name that was about to leave the lab.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 53))
        self._lock = threading.Lock()
        self.names: list[str] = []
        self._thread = threading.Thread(target=self._serve, name="dns-log", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self._sock.recvfrom(512)
            except OSError:
                return
            name = _question(query)
            with self._lock:
                self.names.append(name)
            if len(query) >= 12:  # answer REFUSED, so that the resolver gives up at once
                flags = bytes([0x80 | (query[2] & 0x01), 0x05])
                with contextlib.suppress(OSError):
                    self._sock.sendto(query[:2] + flags + query[4:], client)

    def take(self) -> list[str]:
        """The names asked for since the last call."""
        with self._lock:
            names, self.names = self.names, []
        return names

    def stop(self) -> None:
        """Close the socket and join the thread."""
        self._sock.close()
        self._thread.join(timeout=5)


def _question(query: bytes) -> str:
    labels, index = [], 12
    while index < len(query) and query[index]:
        length = query[index]
        labels.append(query[index + 1 : index + 1 + length].decode("ascii", "replace"))
        index += 1 + length
    return ".".join(labels)
