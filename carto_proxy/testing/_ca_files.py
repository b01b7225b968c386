"""ca_bundle: the one place the testing kit writes CA certificates to a file.

``NODE_EXTRA_CA_CERTS`` and most clients take a path, not PEM text, so every CA the kit makes
(a TLS proxy's, an origin's) and every bundle of several is written by :func:`ca_bundle`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["ServerCaFile", "ca_bundle"]


@contextlib.contextmanager
def ca_bundle(*pems: str) -> Iterator[str]:
    """Write PEM certificates to one new temporary file; yield its path; remove it on exit.

    The file holds each PEM in order, each ending with one newline, readable by its owner
    only: what ``NODE_EXTRA_CA_CERTS``, ``ssl.create_default_context(cafile=...)`` or a
    client's ``verify=`` take.

    >>> from pathlib import Path
    >>> from carto_proxy.testing import LocalOrigin, RecordingProxy
    >>> with RecordingProxy(tls=True) as proxy, LocalOrigin() as origin:
    ...     with ca_bundle(proxy.ca_pem, origin.ca_pem) as path:
    ...         Path(path).read_text().count("BEGIN CERTIFICATE")
    2

    Args:
        pems: PEM text, one or more certificates each (``ca_pem`` of the kit's servers).

    Raises:
        TypeError: a PEM is not text (decode bytes first: ``pem.decode("ascii")``).
        ValueError: no PEM was given.
    """
    if not pems:
        raise ValueError("ca_bundle() needs at least one PEM")
    for pem in pems:
        if not isinstance(pem, str):
            raise TypeError(
                f"ca_bundle() takes PEM text, got {type(pem).__name__}; "
                "decode bytes first: pem.decode('ascii')"
            )
    handle, path = tempfile.mkstemp(prefix="carto-proxy-ca-", suffix=".pem")
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write("".join(pem.strip() + "\n" for pem in pems))
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class ServerCaFile:
    """The CA file of one of the kit's servers: written when it starts, removed when it stops.

    Args:
        what: the server, as its ``ca_file`` error names it ("the LocalOrigin").
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._held: contextlib.ExitStack | None = None
        self._path = ""

    def write(self, pem: str) -> None:
        """Write *pem* to a new file (see :func:`ca_bundle`)."""
        self._held = contextlib.ExitStack()
        self._path = self._held.enter_context(ca_bundle(pem))

    def remove(self) -> None:
        """Remove the file; harmless when there is none."""
        held, self._held = self._held, None
        if held is not None:
            held.close()

    @property
    def path(self) -> str:
        """The file's path.

        Raises:
            RuntimeError: the file is not there (its server does not run).
        """
        if self._held is None:
            raise RuntimeError(f"ca_file exists only while {self._what} runs")
        return self._path
