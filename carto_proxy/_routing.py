"""Route, Action, Rule and the decision order (DESIGN §3.5).

:class:`Router` is a configuration compiled for routing; its ``decide`` is pure: a parsed
target in, a :class:`Route` out. Nothing here reads the environment or touches the network.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ._no_proxy import NoProxy
from ._proxy_url import ProxyURL
from ._target import ParsedTarget, Protocol, Target
from ._warehouses import RULES, Warehouse, detect

__all__ = ["Action", "Route", "Router", "Rule"]


class Action(str, enum.Enum):
    """What a client must do for a target."""

    PROXY = "proxy"
    DIRECT = "direct"

    def __str__(self) -> str:
        return self.value


class Rule(str, enum.Enum):
    """Why a route was chosen; the members are listed in decision order."""

    TCP_BYPASS = "tcp_bypass"
    WAREHOUSE_UNSUPPORTED = "warehouse_unsupported"
    NO_PROXY = "no_proxy"
    NO_PROXY_CONFIGURED = "no_proxy_configured"
    WAREHOUSE_HTTPS_UNSUPPORTED = "warehouse_https_unsupported"
    GRPC_HTTPS_UNSUPPORTED = "grpc_https_unsupported"
    PROXY = "proxy"

    def __str__(self) -> str:
        return self.value


class Route(NamedTuple):
    """The decision for one target: go through :attr:`proxy`, or connect directly.

    An immutable record (a named tuple, so that routing can build one in a fraction of a
    microsecond); compare routes with ``==`` and read their fields by name.
    """

    #: ``Action.PROXY`` or ``Action.DIRECT``.
    action: Action
    #: The proxy to use, ``None`` when direct.
    proxy: ProxyURL | None
    #: Why, machine-readable.
    rule: Rule
    #: The normalised target.
    target: Target
    #: The warehouse, given explicitly or detected from the host.
    warehouse: Warehouse | None = None
    #: The NO_PROXY (or NO_GRPC_PROXY) entry that matched, as written.
    matched_entry: str | None = None
    #: A proxy is configured, yet CARTO's rules send this target direct, so the network must
    #: allow that egress.
    needs_direct_egress: bool = False
    #: The variable the proxy or the matching entry came from.
    variable: str | None = None

    @property
    def reason(self) -> str:
        """One sentence saying why, for people."""
        return _REASONS[self.rule](self)

    def __str__(self) -> str:
        via = f" via {self.proxy}" if self.proxy else ""
        return f"{self.action.value.upper()} {self.target}{via} ({self.rule.value})"


_PROXY, _DIRECT = Action.PROXY, Action.DIRECT
_HTTP, _HTTPS, _GRPC, _TCP = Protocol.HTTP, Protocol.HTTPS, Protocol.GRPC, Protocol.TCP
_GRPC_CHAIN = ("GRPC_PROXY", "HTTPS_PROXY", "HTTP_PROXY")  # gRPC's own order


class Router:
    """A configuration compiled for routing: the proxy of each protocol and the exclusions.

    :class:`~carto_proxy.ProxyConfig` builds one when it is created and hands every parsed
    target to :meth:`decide`; nothing here reads the configuration again.

    Args:
        http_proxy, https_proxy, grpc_proxy: the configured proxies.
        no_proxy: the compiled NO_PROXY list.
        no_grpc_proxy: the compiled NO_GRPC_PROXY list, ``None`` when unset (gRPC then uses
            NO_PROXY).
    """

    __slots__ = ("_grpc", "_has_proxy", "_http", "_https", "_no_grpc_proxy", "_no_proxy")

    def __init__(
        self,
        *,
        http_proxy: ProxyURL | None,
        https_proxy: ProxyURL | None,
        grpc_proxy: ProxyURL | None,
        no_proxy: NoProxy,
        no_grpc_proxy: NoProxy | None,
    ) -> None:
        self._http = (http_proxy, "HTTP_PROXY")
        self._https = (https_proxy, "HTTPS_PROXY")
        chain = zip(_GRPC_CHAIN, (grpc_proxy, https_proxy, http_proxy), strict=True)
        self._grpc = next(((p, name) for name, p in chain if p is not None), (None, "GRPC_PROXY"))
        # None for an empty list: the hot path tests identity, not NoProxy.__bool__.
        self._no_proxy = no_proxy if no_proxy else None
        self._no_grpc_proxy = no_grpc_proxy
        self._has_proxy = bool(http_proxy or https_proxy or grpc_proxy)

    def proxy_for(self, protocol: Protocol) -> tuple[ProxyURL | None, str | None]:
        """The proxy *protocol* uses and the variable it comes from (see ProxyConfig)."""
        if protocol is _HTTPS:
            return self._https
        if protocol is _HTTP:
            return self._http
        return self._grpc if protocol is _GRPC else (None, None)

    def decide(self, parsed: ParsedTarget, warehouse: Warehouse | None) -> Route:
        """Apply the decision order (DESIGN §3.5) to a parsed target."""
        target, ip, implied = parsed
        protocol = target.protocol
        if warehouse is None:
            warehouse = implied or (detect(target.host) if ip is None else None)
        rule = RULES[warehouse] if warehouse is not None else None
        if protocol is _TCP or (rule is not None and rule.tcp):
            if protocol is not _TCP:  # what goes direct is the warehouse's TCP connection
                target = Target(_TCP, target.host, target.port)
            return self._bypass(target, warehouse, Rule.TCP_BYPASS, None)
        if rule is not None and not (rule.via_http_proxy or rule.via_https_proxy):
            return self._bypass(target, warehouse, Rule.WAREHOUSE_UNSUPPORTED, None)
        grpc = protocol is _GRPC
        no_proxy, no_proxy_name = self._no_proxy, "NO_PROXY"
        if grpc and self._no_grpc_proxy is not None:
            no_proxy, no_proxy_name = self._no_grpc_proxy, "NO_GRPC_PROXY"
        if no_proxy is not None:
            entry = no_proxy.match(target.host, target.port, ip)
            if entry is not None:
                return Route(
                    _DIRECT, None, Rule.NO_PROXY, target, warehouse, entry, False, no_proxy_name
                )
        # proxy_for(), inlined: a method call is a tenth of the decision's cost.
        if protocol is _HTTPS:
            proxy, variable = self._https
        elif protocol is _HTTP:
            proxy, variable = self._http
        else:
            proxy, variable = self._grpc
        if proxy is None:
            return Route(
                _DIRECT, None, Rule.NO_PROXY_CONFIGURED, target, warehouse, None, False, variable
            )
        if proxy.scheme == "https":  # a TLS proxy: not every client can use it
            if rule is not None and not rule.via_https_proxy:
                return self._bypass(target, warehouse, Rule.WAREHOUSE_HTTPS_UNSUPPORTED, variable)
            if grpc:
                return self._bypass(target, warehouse, Rule.GRPC_HTTPS_UNSUPPORTED, variable)
        return Route(_PROXY, proxy, Rule.PROXY, target, warehouse, None, False, variable)

    def _bypass(
        self, target: Target, warehouse: Warehouse | None, rule: Rule, variable: str | None
    ) -> Route:
        """A direct route CARTO's rules impose although a proxy may be configured."""
        return Route(_DIRECT, None, rule, target, warehouse, None, self._has_proxy, variable)


def _label(route: Route) -> str:
    return RULES[route.warehouse].label if route.warehouse else "this target"


def _egress(route: Route) -> str:
    if not route.needs_direct_egress:
        return ""
    return f"; the network must allow direct egress to {route.target.authority}"


_REASONS = {
    Rule.TCP_BYPASS: lambda r: (
        f"{_label(r) if r.warehouse else 'This target'} uses a TCP connection, not HTTP(S), "
        f"so the proxy is bypassed{_egress(r)}."
    ),
    Rule.WAREHOUSE_UNSUPPORTED: lambda r: (
        f"{_label(r)} does not support the proxy, so the connection bypasses it{_egress(r)}."
    ),
    Rule.NO_PROXY: lambda r: (
        f"{r.target.host} matches the {r.variable} entry {r.matched_entry!r}, so it goes direct."
    ),
    Rule.NO_PROXY_CONFIGURED: lambda r: (
        f"No proxy is configured for {r.target.protocol.value} targets"
        f" ({r.variable or 'no proxy variable'} is unset), so it goes direct."
    ),
    Rule.WAREHOUSE_HTTPS_UNSUPPORTED: lambda r: (
        f"{_label(r)} does not support HTTPS proxies; the {r.variable} proxy is bypassed and "
        f"the connection goes direct (add .snowflakecomputing.com to NO_PROXY){_egress(r)}."
    ),
    Rule.GRPC_HTTPS_UNSUPPORTED: lambda r: (
        f"gRPC cannot speak TLS to a proxy, so the https:// proxy from {r.variable} is "
        f"bypassed{_egress(r)}."
    ),
    Rule.PROXY: lambda r: f"Sent through the proxy {r.proxy} from {r.variable}.",
}
