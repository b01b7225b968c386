"""block_direct: going around the proxy fails at once, and nothing a test runs leaves loopback.

Two judges, one event stream (PEP 578 audit events of the ``socket`` module):

- :func:`carto_proxy.audit` judges every lookup and connection by the configuration: a host
  whose route says PROXY, looked up or connected to by the process itself, went direct. The
  audit's callback refuses it with the kit's message, before any packet or TLS handshake.
- This module's hook keeps the rest on the machine: a name no guard maps (and not
  ``localhost``) is never looked up, and nothing connects beyond loopback.

A :class:`~carto_proxy.testing.DirectGuard` resolves the mapped names to local servers. The
kit's own machinery is not judged (:mod:`carto_proxy._unaudited`): its servers' connection
threads, and connections to an address the guard maps a name to, are exempt from every audit.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from carto_proxy._audit import Audit, Violation, audit
from carto_proxy._config import ProxyConfig
from carto_proxy._hosts import format_authority
from carto_proxy._stacks import capture, where
from carto_proxy.exceptions import ConfigError
from carto_proxy.testing._assertions import using
from carto_proxy.testing._direct import LOCAL_NAMES, DirectGuard
from carto_proxy.testing._environ import environ_listeners

__all__ = ["Blocking", "Judge", "block_direct"]

_HINT = (
    "map the name to a local server with block_direct(hosts=...) or DirectGuard.add(), or "
    "use a DirectGuard(block=False) instead to let it through"
)


@contextmanager
def block_direct(
    config: ProxyConfig | None = None,
    *,
    hosts: Mapping[str, str | tuple[str, int]] | None = None,
    hint: str = _HINT,
) -> Iterator[DirectGuard]:
    """Make going around the proxy fail at once, and keep everything else on loopback.

    While inside, in this process:

    - looking up, or connecting to, a host whose route under *config* says PROXY fails at
      once with an :class:`OSError` saying that it went direct: the host and port, the line
      that did it, the route it should have taken (proxy, variable, rule) and the fix. Nothing
      is sent, so no TLS handshake fails first with a certificate error;
    - a name in *hosts* resolves to its local server, as :class:`DirectGuard` does (with a
      port, on any port asked for);
    - every other name is refused unless it is ``localhost``, and so is every connection
      beyond loopback: nothing reaches the network.

    It is the guard every fixture of the pytest plugin uses. What it cannot see is what the
    egress audit cannot see: sockets opened by C or Rust code (gRPC's core).

    >>> import socket
    >>> from carto_proxy.testing import proxy_environ
    >>> with proxy_environ("http://127.0.0.1:3128") as config, block_direct(config):
    ...     try:
    ...         socket.getaddrinfo("api.example.com", 443)
    ...     except OSError as error:
    ...         print(str(error).partition(" itself")[0])
    carto_proxy: api.example.com:443 went direct: this process looked it up

    Args:
        config: the configuration the code under test follows. ``None`` follows the
            environment: :meth:`ProxyConfig.from_env` as the block starts, read again each
            time :func:`~carto_proxy.testing.proxy_environ` changes ``os.environ``.
        hosts: names to resolve to local servers, mapped to an IP address or ``(ip, port)``.
        hint: what the message about an unmapped name or a remote address suggests.

    Yields:
        The active :class:`DirectGuard`: ``resolved``, ``blocked``, ``went_direct()``,
        ``add()``. It is also the guard the ``assert_*`` helpers report on.

    Raises:
        ConfigError: *config* is ``None`` and the environment holds a value carto_proxy
            refuses.
    """
    with Blocking(config, hosts=hosts, hint=hint) as blocking:
        yield blocking.guard


class Blocking:
    """What :func:`block_direct` runs: a guard for the names, a judge, the loopback hook.

    The pytest plugin uses it directly, to judge by ``carto_proxy_config`` once that exists.

    Args:
        config: what to judge by; ``None`` follows the environment.
        hosts: the guard's names.
        hint: what refusals of unmapped names and remote addresses suggest.
        lenient: judge an environment carto_proxy cannot read as no proxy at all, instead of
            raising (the plugin's fixtures replace it, or leave the test to fail on it).
    """

    def __init__(
        self,
        config: ProxyConfig | None,
        *,
        hosts: Mapping[str, str | tuple[str, int]] | None,
        hint: str,
        lenient: bool = False,
    ) -> None:
        self.guard = DirectGuard(hosts)
        self.hint = hint
        self._judge = Judge(config, on_violation=_went_direct, lenient=lenient)
        self._stack = ExitStack()

    def judge_by(self, config: ProxyConfig) -> None:
        """Judge by *config* from now on (no longer following the environment)."""
        self._judge.judge_by(config)

    def __enter__(self) -> Blocking:
        global _active, _installed
        with ExitStack() as stack:
            stack.enter_context(self.guard)
            stack.enter_context(self._judge)
            stack.enter_context(using(guard=self.guard))
            with _lock:
                _active = (*_active, self)
                if not _installed:
                    # After the judge's audit(): its hook comes first, so going direct is
                    # told as such rather than as a name no server is mapped to.
                    sys.addaudithook(_confine)
                    _installed = True
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active
        with _lock:
            _active = tuple(block for block in _active if block is not self)
        self._stack.close()


class Judge:
    """An egress audit by a configuration, or by the environment as ``proxy_environ`` sets it.

    Args:
        config: the configuration to judge by; ``None`` follows the environment:
            :meth:`ProxyConfig.from_env` on entry, and again each time
            :func:`~carto_proxy.testing.proxy_environ` changes ``os.environ``.
        on_violation: called with each :class:`~carto_proxy.Violation`; what it raises fails
            the lookup or connection.
        lenient: an environment carto_proxy cannot read is judged as no proxy at all,
            instead of raising :class:`~carto_proxy.ConfigError` on entry.
    """

    def __init__(
        self,
        config: ProxyConfig | None,
        on_violation: Callable[[Violation], object],
        *,
        lenient: bool = False,
    ) -> None:
        self._config = config
        self._on_violation = on_violation
        self._lenient = lenient
        self._audit: Audit | None = None

    def __enter__(self) -> Judge:
        config = self._config
        if config is None:
            environ_listeners.append(self._follow)
            try:
                config = ProxyConfig.from_env()
            except ConfigError:
                if not self._lenient:
                    environ_listeners.remove(self._follow)
                    raise
                config = ProxyConfig.direct()
        self._audit = audit(config, on_violation=self._on_violation)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._follow in environ_listeners:
            environ_listeners.remove(self._follow)
        if self._audit is not None:
            self._audit.stop()

    def judge_by(self, config: ProxyConfig) -> None:
        """Judge by *config* from now on, whatever the environment becomes."""
        if self._follow in environ_listeners:
            environ_listeners.remove(self._follow)
        self._replace(config)

    def _follow(self) -> None:
        try:
            config = ProxyConfig.from_env()
        except ConfigError:
            return  # the code under test cannot read it either: keep judging by the last one
        self._replace(config)

    def _replace(self, config: ProxyConfig) -> None:
        previous, self._audit = self._audit, audit(config, on_violation=self._on_violation)
        if previous is not None:
            previous.stop()


def _went_direct(violation: Violation) -> None:
    """Refuse a lookup or connection that went around the proxy (the audit's callback)."""
    route = violation.route
    how = "looked it up" if violation.kind == "resolve" else "connected to it"
    raise OSError(
        f"carto_proxy: {violation.authority} went direct: this process {how} itself instead "
        f"of asking the proxy for it ({violation.where}). Its route is through the proxy "
        f"{route.proxy} ({route.variable}, rule {route.rule.value}). Fix: {violation.fix}"
    )


# -- the hook keeping everything else on loopback ------------------------------------------------

_lock = threading.Lock()
_active: tuple[Blocking, ...] = ()
_installed = False
_INET = frozenset({socket.AF_INET, socket.AF_INET6})


def _confine(event: str, args: tuple[Any, ...]) -> None:
    if not _active or event not in _JUDGES:
        return
    refused = _JUDGES[event](args)
    if refused is not None:
        block = _active[-1]
        raise OSError(f"carto_proxy: {refused} ({where(capture())}). Fix: {block.hint}")


def _lookup(args: tuple[Any, ...]) -> str | None:
    host = args[0]
    if host is None:
        return None
    name = (host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)).lower()
    name = name.strip().strip("[]").rstrip(".")
    if _address(name) is not None or name in LOCAL_NAMES:
        return None  # a literal resolves nothing: its connection is judged
    if any(block.guard.maps(name) for block in _active):
        return None
    port = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    shown = name if port is None else format_authority(name, port)
    return (
        f"{shown} was looked up, but no local server is mapped to it, and a kit test never "
        "reaches the network"
    )


def _reverse(args: tuple[Any, ...]) -> str | None:
    address = args[0][0] if isinstance(args[0], tuple) else args[0]
    if _is_local(str(address)):
        return None
    return f"{address} was looked up by address, and a kit test never reaches the network"


def _connect(args: tuple[Any, ...]) -> str | None:
    sock, address = args[0], args[-1]
    if getattr(sock, "family", None) not in _INET or not isinstance(address, tuple):
        return None
    host = str(address[0])
    if _is_local(host) or host.lower().rstrip(".") in LOCAL_NAMES:
        return None
    target = format_authority(host, address[1]) if isinstance(address[1], int) else host
    return f"a connection to {target} was refused: a kit test never reaches beyond loopback"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _is_local(host: str) -> bool:
    """Whether *host* is a loopback (or unspecified, i.e. this machine's) address."""
    address = _address(host.strip("[]"))
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


_JUDGES = {
    "socket.getaddrinfo": _lookup,
    "socket.gethostbyname": _lookup,
    "socket.gethostbyname_ex": _lookup,
    "socket.gethostbyaddr": _reverse,
    "socket.getnameinfo": _reverse,
    "socket.connect": _connect,
    "socket.sendto": _connect,
    "socket.sendmsg": _connect,
}
