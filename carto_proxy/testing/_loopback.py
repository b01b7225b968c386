"""What RecordingProxy and LocalOrigin share: a server on a loopback address, run once.

Each holds one :class:`~carto_proxy.testing._serving.ConnectionServer` and, while it runs, a
file with the PEM of the CA its clients must trust.
"""

from __future__ import annotations

from typing import TypeVar

from carto_proxy.testing._ca_files import ServerCaFile
from carto_proxy.testing._serving import ConnectionServer, Serve

__all__ = ["LoopbackServer"]

_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """The lifecycle of a kit server: ``start()`` once, ``stop()`` within a second.

    Args:
        host: the loopback address to listen on.
        port: the port to listen on; ``0`` picks a free one.
        serve: what to do with each connection, in its own thread.
        name: the class name, for threads and messages.
        backlog: how many connections may wait to be accepted.
        ca_owner: how ``ca_file``'s error names the server ("the LocalOrigin").
    """

    def __init__(
        self, *, host: str, port: int, serve: Serve, name: str, backlog: int, ca_owner: str
    ) -> None:
        self._host = host
        self._requested_port = port
        self._name = name
        self._server = ConnectionServer(serve, name=name, backlog=backlog)
        self._ca_file = ServerCaFile(ca_owner)

    def _ca_to_write(self) -> str | None:
        """The PEM :attr:`ca_file` holds while the server runs; ``None``: no file."""
        return None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self: _S) -> _S:
        """Listen and start serving; return this server.

        Raises:
            RuntimeError: it was already started (a server runs once).
        """
        if self._server.used:
            raise RuntimeError(f"a {self._name} runs once; make a new one")
        self._server.start(self._host, self._requested_port)
        pem = self._ca_to_write()
        if pem is not None:
            self._ca_file.write(pem)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and join every thread (within 1 s).

        Calling it again, or before :meth:`start`, does nothing.
        """
        self._server.stop()
        self._ca_file.remove()

    @property
    def host(self) -> str:
        """The loopback address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port it listens (or listened) on.

        Raises:
            RuntimeError: it was never started.
        """
        if self._server.port is None:
            raise RuntimeError(f"{self._name} is not started; call start() first")
        return self._server.port
