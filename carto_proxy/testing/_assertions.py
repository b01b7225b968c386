"""Assertions about what a RecordingProxy saw, with failure messages that say what happened.

Each helper takes the proxy as ``proxy=``; inside a test that uses the pytest plugin's
``carto_proxy_recording_proxy`` fixture (directly or through ``carto_proxy_config`` /
``carto_proxy_environ``) that proxy is the default, and the plugin's direct-connection guard
lets a failure say which host went direct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from carto_proxy._hosts import split_authority
from carto_proxy._target import parse_target

if TYPE_CHECKING:
    from carto_proxy.testing._direct import DirectGuard
    from carto_proxy.testing._recording_proxy import ProxyRecord, RecordingProxy

__all__ = ["assert_not_proxied", "assert_proxied", "assert_tunnelled", "using"]

_SHOWN = 20  # records listed in a failure message before "... and N more"

# The proxy and guard the helpers use when none is given: set by the pytest plugin's fixtures.
_active_proxies: list[RecordingProxy] = []
_guards: list[DirectGuard] = []


@contextmanager
def using(
    proxy: RecordingProxy | None = None,
    guard: DirectGuard | None = None,
    *,
    unless_set: bool = False,
) -> Iterator[None]:
    """Make ``proxy`` and ``guard`` the helpers' defaults while inside (innermost wins).

    With ``unless_set``, ``proxy`` becomes the default only when no other proxy is.
    """
    pushed: list[tuple[list[Any], Any]] = []
    if proxy is not None and not (unless_set and _active_proxies):
        pushed.append((_active_proxies, proxy))
    if guard is not None:
        pushed.append((_guards, guard))
    for stack, item in pushed:
        stack.append(item)
    try:
        yield
    finally:
        for stack, item in pushed:
            stack.remove(item)


def assert_tunnelled(
    target: str,
    *,
    proxy: RecordingProxy | None = None,
    status: int | None = 200,
    timeout: float = 5.0,
) -> ProxyRecord:
    """Assert that the proxy tunnelled (``CONNECT``) ``target``; return the tunnel's record.

    Args:
        target: ``"host:port"`` (that port), ``"host"`` (any port) or a URL
            (``"https://api.example.com/v1"`` means ``api.example.com:443``).
        proxy: the proxy to ask; by default the plugin's ``carto_proxy_recording_proxy``.
        status: the status the proxy must have answered; ``200`` (the default) means the
            tunnel was established; ``None`` accepts any, e.g. a refusal.
        timeout: seconds to wait for an answer from the proxy on a tunnel it has already
            received, never for a tunnel it has not seen.

    Raises:
        AssertionError: no such tunnel; the message lists what the proxy did see.
    """
    return _assert_seen(
        target, "tunnelled through", "assert_tunnelled", proxy, status, timeout, tunnels_only=True
    )


def assert_proxied(
    target: str,
    *,
    proxy: RecordingProxy | None = None,
    status: int | None = None,
    timeout: float = 5.0,
) -> ProxyRecord:
    """Assert that ``target`` went through the proxy, tunnelled or forwarded; return the record.

    Use it for ``http://`` targets, which a proxy forwards rather than tunnels. Arguments as
    for :func:`assert_tunnelled`, except that any status is accepted by default.

    Raises:
        AssertionError: the proxy saw nothing for ``target``.
    """
    return _assert_seen(
        target, "sent through", "assert_proxied", proxy, status, timeout, tunnels_only=False
    )


def assert_not_proxied(target: str, *, proxy: RecordingProxy | None = None) -> None:
    """Assert that nothing for ``target`` went through the proxy: it went direct, if anywhere.

    Args:
        target: ``"host"`` (any port), ``"host:port"`` or a URL.
        proxy: the proxy to ask; by default the plugin's ``carto_proxy_recording_proxy``.

    Raises:
        AssertionError: the proxy saw ``target``; the message says how.
    """
    proxy, _ = _resolve(proxy, "assert_not_proxied")
    key = _key(target)
    seen = proxy.seen(key)
    if seen:
        how = ", ".join(describe_record(record) for record in seen[:_SHOWN])
        raise AssertionError(
            f"{key} went through the proxy ({how}), but it should have gone direct"
        )


def describe_record(record: ProxyRecord) -> str:
    """Return one record as ``CONNECT api.example.com:443 → 200`` (with its error, if any)."""
    what = record.authority if record.path is None else f"http://{record.authority}{record.path}"
    answer = "no answer yet" if record.status is None else str(record.status)
    error = f" ({record.error})" if record.error else ""
    return f"{record.method} {what} → {answer}{error}"


def _assert_seen(
    target: str,
    verb: str,
    helper: str,
    proxy: RecordingProxy | None,
    status: int | None,
    timeout: float,
    *,
    tunnels_only: bool,
) -> ProxyRecord:
    proxy, guard = _resolve(proxy, helper)
    key = _key(target)

    def candidates() -> list[ProxyRecord]:
        found = proxy.seen(key)
        return [r for r in found if r.method == "CONNECT"] if tunnels_only else found

    found = candidates()
    if found and any(record.status is None for record in found):
        # The client may hold the proxy's answer before the proxy has recorded sending it.
        _wait(proxy, lambda: all(record.status is not None for record in candidates()), timeout)
        found = candidates()
    for record in found:
        if status is None or record.status == status:
            return record
    if found:
        answers = ", ".join(describe_record(record) for record in found[:_SHOWN])
        hint = ""
        if any(record.status == 403 and record.error for record in found):
            hint = (
                "; map the name to a local server with upstreams= (or the plugin's "
                "origin_hosts=) so that the proxy can connect"
            )
        raise AssertionError(
            f"{key} reached the proxy {proxy.url}, but not with status {status}: {answers}{hint}"
        )
    raise AssertionError(
        f"{key} was not {verb} the proxy {proxy.url}{_direct_note(guard, key)}; "
        f"the proxy saw: {_summary(proxy.records)}"
    )


def _wait(proxy: RecordingProxy, done: Callable[[], bool], timeout: float) -> None:
    # wait_for() calls the predicate under the proxy's re-entrant lock, so done() may read it.
    with contextlib.suppress(TimeoutError):  # the caller reports what it finds
        proxy.wait_for(lambda _: done(), timeout=timeout)


def _direct_note(guard: DirectGuard | None, key: str) -> str:
    if guard is None:
        return ""
    host = _host_of(key)
    if guard.went_direct(host):
        return f": it went direct (this process looked {host} up itself)"
    return ""


def _host_of(key: str) -> str:
    try:
        return split_authority(key).host
    except ValueError:
        return key  # not host[:port]: the guard has not seen it either


def _summary(records: list[ProxyRecord]) -> str:
    if not records:
        return "nothing"
    shown = [describe_record(record) for record in records[:_SHOWN]]
    more = f", ... and {len(records) - _SHOWN} more" if len(records) > _SHOWN else ""
    return "[" + ", ".join(shown) + more + "]"


def _key(target: str) -> str:
    """Return ``host`` or ``host:port`` for :meth:`RecordingProxy.seen`; URLs give host:port."""
    if "://" not in target:
        return target.strip()
    return parse_target(target)[0].authority


def _resolve(
    proxy: RecordingProxy | None, helper: str
) -> tuple[RecordingProxy, DirectGuard | None]:
    guard = _guards[-1] if _guards else None
    if proxy is not None:
        return proxy, guard
    if not _active_proxies:
        raise TypeError(
            f"{helper}() needs proxy=: no carto_proxy_recording_proxy fixture is active "
            "(request carto_proxy_recording_proxy, carto_proxy_config or carto_proxy_environ, "
            "or pass the RecordingProxy)"
        )
    return _active_proxies[-1], guard
