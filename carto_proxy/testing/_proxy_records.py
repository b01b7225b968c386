"""What a RecordingProxy saw: one ProxyRecord per tunnel or request, and failed TLS handshakes.

Connection threads write live records; tests read frozen snapshots and wait for conditions on
them. Both lists are bounded (:data:`MAX_RECORDS`, :data:`MAX_TLS_ERRORS`) so that a proxy
serving a long soak test holds a fixed amount of memory; ``clear()`` drains them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from carto_proxy._hosts import format_authority

__all__ = ["MAX_RECORDS", "MAX_TLS_ERRORS", "LiveRecord", "ProxyRecord", "RecordBook"]

MAX_RECORDS = 100_000
"""Records kept at most (about 450 bytes each); beyond, the oldest finished one is forgotten."""
MAX_TLS_ERRORS = 1_000
"""TLS handshake errors kept at most; beyond, the oldest is forgotten."""

Condition = Callable[[list["ProxyRecord"]], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRecord:
    """One tunnel or forwarded request, as the proxy saw it.

    Attributes:
        method: ``"CONNECT"`` for a tunnel, else the forwarded request's method.
        authority: ``host:port`` that was asked for (IPv6 hosts bracketed); the raw request
            target when it could not be parsed.
        host: the host asked for, lowercase, without brackets (``""`` when unparseable).
        port: the port asked for (``0`` when unparseable).
        path: the origin-form target sent upstream (``/p?q``); ``None`` for tunnels.
        client: ``(ip, port)`` of the client's connection to the proxy.
        status: what the proxy answered: 200 for an established tunnel, the upstream's status
            for a forwarded request, the refusal or failure status (400, 403, 502, ...)
            otherwise; ``None`` while not answered yet.
        bytes_up: payload bytes relayed client → upstream: everything after the ``200`` for a
            tunnel, the request body for a forwarded request (headers are not counted).
        bytes_down: payload bytes relayed upstream → client, counted the same way.
        start: ``time.monotonic()`` when the request head was read.
        end: ``time.monotonic()`` when the tunnel or request finished; ``None`` while open.
        error: why it was refused, failed or cut; ``None`` when it ran to completion
            (a tunnel that either side closed or reset ends without error).
    """

    method: str
    authority: str
    host: str
    port: int
    path: str | None
    client: tuple[str, int]
    status: int | None
    bytes_up: int
    bytes_down: int
    start: float
    end: float | None
    error: str | None

    @property
    def done(self) -> bool:
        """Whether the tunnel or request has finished."""
        return self.end is not None

    @property
    def duration(self) -> float | None:
        """Seconds from the request head to the end; ``None`` while open."""
        return None if self.end is None else self.end - self.start


class LiveRecord:
    """A tunnel or request in flight, as :attr:`now` says; changed only by its RecordBook."""

    __slots__ = ("now",)

    def __init__(self, record: ProxyRecord) -> None:
        self.now = record
        """The latest snapshot; replaced, never changed, so that readers need no lock."""


class RecordBook:
    """The records and TLS errors of one proxy, written by its threads, read by tests.

    Args:
        max_records: records kept at most (live ones are never forgotten).
        max_tls_errors: TLS errors kept at most.
    """

    def __init__(
        self, *, max_records: int = MAX_RECORDS, max_tls_errors: int = MAX_TLS_ERRORS
    ) -> None:
        self._cond = threading.Condition()
        self._max_records = max_records
        self._records: list[LiveRecord] = []
        self._tls_errors: collections.deque[str] = collections.deque(maxlen=max_tls_errors)

    # --- writing (connection threads) -----------------------------------------------------------

    def open(
        self,
        method: str,
        address: tuple[str, int] | None,
        client: tuple[str, int],
        *,
        raw: str = "",
        path: str | None = None,
    ) -> LiveRecord:
        """Start a record for ``address``, or for the ``raw`` target when it is unparseable."""
        host, port = address or ("", 0)
        record = ProxyRecord(
            method=method,
            authority=raw if address is None else format_authority(host, port),
            host=host,
            port=port,
            path=path,
            client=client,
            status=None,
            bytes_up=0,
            bytes_down=0,
            start=time.monotonic(),
            end=None,
            error=None,
        )
        live = LiveRecord(record)
        with self._cond:
            self._records.append(live)
            if len(self._records) > self._max_records:
                self._forget_oldest_finished()
            self._cond.notify_all()
        return live

    def set_status(self, record: LiveRecord, status: int, error: str | None = None) -> None:
        """Set what the proxy answered (and why it refused or failed)."""
        with self._cond:
            record.now = replace(record.now, status=status, error=error or record.now.error)
            self._cond.notify_all()

    def set_error(self, record: LiveRecord, error: str) -> None:
        """Set why a record failed, unless it has a reason already."""
        with self._cond:
            record.now = replace(record.now, error=record.now.error or error)
            self._cond.notify_all()

    def add_bytes(self, record: LiveRecord, *, up: int, down: int) -> None:
        """Count payload bytes relayed."""
        with self._cond:
            now = record.now
            record.now = replace(now, bytes_up=now.bytes_up + up, bytes_down=now.bytes_down + down)
            self._cond.notify_all()

    @contextlib.contextmanager
    def recording(self, record: LiveRecord) -> Iterator[LiveRecord]:
        """Set ``end`` (and ``error`` for an exception) however the block leaves."""
        try:
            yield record
        except Exception as exc:
            self.set_error(record, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            with self._cond:
                record.now = replace(record.now, end=time.monotonic())
                self._cond.notify_all()

    def add_tls_error(self, error: str) -> None:
        """Record a failed TLS handshake with a client."""
        with self._cond:
            self._tls_errors.append(error)
            self._cond.notify_all()

    # --- reading (tests) ------------------------------------------------------------------------

    def records(self) -> list[ProxyRecord]:
        """Snapshots of the records, in start order."""
        with self._cond:
            return self._snapshot()

    def count(self) -> int:
        """How many records are kept."""
        with self._cond:
            return len(self._records)

    def tls_errors(self) -> list[str]:
        """The TLS errors, oldest first."""
        with self._cond:
            return list(self._tls_errors)

    def clear(self) -> None:
        """Forget every record and TLS error so far."""
        with self._cond:
            self._records.clear()
            self._tls_errors.clear()

    def wait_for(self, condition: int | Condition, timeout: float) -> list[ProxyRecord]:
        """Wait until the records satisfy ``condition`` (see ``RecordingProxy.wait_for``)."""
        if not callable(condition) and condition > self._max_records:
            raise ValueError(
                f"wait_for({condition}): a RecordingProxy keeps at most {self._max_records} "
                "records; clear() them as you go"
            )
        check = condition if callable(condition) else _finished(condition)
        with self._cond:
            if not self._cond.wait_for(lambda: check(self._snapshot()), timeout):
                raise TimeoutError(
                    f"RecordingProxy.wait_for({condition!r}) timed out after {timeout}s; "
                    f"records: {self._snapshot()!r}"
                )
            return self._snapshot()

    def wait_for_tls_errors(self, count: int, timeout: float) -> list[str]:
        """Wait until at least ``count`` TLS errors are kept; return them."""
        kept = self._tls_errors.maxlen
        if kept is not None and count > kept:
            raise ValueError(f"wait_for_tls_errors({count}): at most {kept} are kept")
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._tls_errors) >= count, timeout):
                raise TimeoutError(f"{len(self._tls_errors)} TLS errors after {timeout}s")
            return list(self._tls_errors)

    def _snapshot(self) -> list[ProxyRecord]:
        return [record.now for record in self._records]

    def _forget_oldest_finished(self) -> None:
        for index, record in enumerate(self._records):
            if record.now.end is not None:
                del self._records[index]
                return


def _finished(count: int) -> Condition:
    return lambda records: sum(record.done for record in records) >= count
