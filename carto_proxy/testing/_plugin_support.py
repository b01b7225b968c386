"""What the pytest plugin's fixtures share: the marker's settings and the session's servers.

Imported when the plugin loads, so it imports only pytest and carto_proxy's core; the servers
are imported when a fixture first needs one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from carto_proxy.testing._origin import LocalOrigin
    from carto_proxy.testing._recording_proxy import RecordingProxy

__all__ = ["MARKER", "Servers", "Settings"]

MARKER = "carto_proxy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the ``carto_proxy`` markers on a test ask for (closest marker wins, per key)."""

    no_proxy: str | None = None
    tls: bool = False
    upstreams: Mapping[str, tuple[str, int]] | None = None
    origin_hosts: tuple[str, ...] = ()
    ca_files: tuple[str, ...] = ()
    block_direct: bool = True

    @classmethod
    def of(cls, node: pytest.Item) -> Settings:
        """Read the markers of a test, from the closest (function) to the farthest (module).

        Raises:
            TypeError: a marker has positional or unknown arguments.
        """
        given: dict[str, Any] = {}
        for marker in node.iter_markers(MARKER):
            unknown = set(marker.kwargs) - set(cls.__dataclass_fields__)
            if marker.args or unknown:
                raise TypeError(
                    f"@pytest.mark.carto_proxy takes keyword arguments "
                    f"{', '.join(cls.__dataclass_fields__)}; got "
                    f"{[*marker.args, *sorted(unknown)]!r}"
                )
            for key, value in marker.kwargs.items():
                given.setdefault(key, value)
        no_proxy = given.get("no_proxy")
        if no_proxy is not None and not isinstance(no_proxy, str):
            no_proxy = ",".join(no_proxy)
        return cls(
            no_proxy=no_proxy,
            tls=bool(given.get("tls", False)),
            upstreams=given.get("upstreams"),
            origin_hosts=_names(given.get("origin_hosts", ())),
            ca_files=tuple(map(os.fspath, _names(given.get("ca_files", ())))),
            block_direct=bool(given.get("block_direct", True)),
        )


def _names(value: Any) -> tuple[Any, ...]:
    """One value or several, as a tuple."""
    return (value,) if isinstance(value, (str, os.PathLike)) else tuple(value)


class Servers:
    """The session's shared servers, each started the first time a test needs it."""

    def __init__(self) -> None:
        self._by_tls: dict[bool, RecordingProxy] = {}
        self._origin: LocalOrigin | None = None
        self._ca_files = ExitStack()
        self._bundles: dict[tuple[str, ...], str] = {}

    def proxy(self, *, tls: bool) -> RecordingProxy:
        """Return the shared plain or TLS proxy, cleared and without faults."""
        proxy = self._by_tls.get(tls)
        if proxy is None:
            from carto_proxy.testing._recording_proxy import RecordingProxy

            proxy = self._by_tls[tls] = RecordingProxy(tls=tls).start()
        proxy.clear()
        proxy.clear_faults()
        return proxy

    def origin(self) -> LocalOrigin:
        """Return the shared origin, cleared."""
        if self._origin is None:
            from carto_proxy.testing._origin import LocalOrigin

            self._origin = LocalOrigin().start()
        self._origin.clear()
        return self._origin

    def ca_bundle(self, pems: Iterable[str]) -> str:
        """Return a PEM file holding ``pems``, written once per content for the session."""
        from carto_proxy.testing._ca_files import ca_bundle

        key = tuple(pems)
        if key not in self._bundles:
            self._bundles[key] = self._ca_files.enter_context(ca_bundle(*key))
        return self._bundles[key]

    def stop(self) -> None:
        """Stop every server and remove the CA files."""
        for proxy in self._by_tls.values():
            proxy.stop()
        if self._origin is not None:
            self._origin.stop()
        self._ca_files.close()
