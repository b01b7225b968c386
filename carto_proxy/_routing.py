"""Route, Action, Rule and the decision order (DESIGN §3.5).

``decide`` is pure: it reads a compiled configuration and a parsed target and returns a
:class:`Route`. Nothing here reads the environment or touches the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._proxy_url import ProxyURL
from ._target import ParsedTarget, Protocol, Target
from ._warehouses import RULES, Warehouse, detect

if TYPE_CHECKING:
    from ._config import ProxyConfig

__all__ = ["Action", "Route", "Rule", "decide"]


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


# Rules that send a target direct although a proxy is configured: the firewall must allow it.
_BYPASS_RULES = frozenset(
    {
        Rule.TCP_BYPASS,
        Rule.WAREHOUSE_UNSUPPORTED,
        Rule.WAREHOUSE_HTTPS_UNSUPPORTED,
        Rule.GRPC_HTTPS_UNSUPPORTED,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """The decision for one target: go through :attr:`proxy`, or connect directly.

    Attributes:
        action: ``Action.PROXY`` or ``Action.DIRECT``.
        proxy: the proxy to use, ``None`` when direct.
        rule: why, machine-readable.
        target: the normalised target.
        warehouse: the warehouse, given explicitly or detected from the host.
        matched_entry: the NO_PROXY (or NO_GRPC_PROXY) entry that matched, as written.
        needs_direct_egress: a proxy is configured, yet CARTO's rules send this target
            direct, so the network must allow that egress.
        variable: the variable the proxy or the matching entry came from.
    """

    action: Action
    proxy: ProxyURL | None
    rule: Rule
    target: Target
    warehouse: Warehouse | None = None
    matched_entry: str | None = None
    needs_direct_egress: bool = False
    variable: str | None = None

    @property
    def reason(self) -> str:
        """One sentence saying why, for people."""
        return _REASONS[self.rule](self)

    def __str__(self) -> str:
        via = f" via {self.proxy}" if self.proxy else ""
        return f"{self.action.value.upper()} {self.target}{via} ({self.rule.value})"


_PROXY, _DIRECT = Action.PROXY, Action.DIRECT
_GRPC, _TCP = Protocol.GRPC, Protocol.TCP
_new = object.__new__
(
    _set_action,
    _set_proxy,
    _set_rule,
    _set_target,
    _set_warehouse,
    _set_entry,
    _set_egress,
    _set_variable,
) = (
    Route.__dict__[name].__set__
    for name in (
        "action",
        "proxy",
        "rule",
        "target",
        "warehouse",
        "matched_entry",
        "needs_direct_egress",
        "variable",
    )
)


def _make_route(
    action: Action,
    proxy: ProxyURL | None,
    rule: Rule,
    target: Target,
    warehouse: Warehouse | None,
    matched_entry: str | None,
    needs_direct_egress: bool,
    variable: str | None,
) -> Route:
    """Build a :class:`Route` without the frozen ``__init__`` (see ``make_target``)."""
    route = _new(Route)
    _set_action(route, action)
    _set_proxy(route, proxy)
    _set_rule(route, rule)
    _set_target(route, target)
    _set_warehouse(route, warehouse)
    _set_entry(route, matched_entry)
    _set_egress(route, needs_direct_egress)
    _set_variable(route, variable)
    return route


def decide(config: ProxyConfig, parsed: ParsedTarget, warehouse: Warehouse | None) -> Route:
    """Apply the decision order to a parsed target."""
    target, ip, implied = parsed
    protocol = target.protocol
    if warehouse is None:
        warehouse = implied or (detect(target.host) if ip is None else None)
    rule = RULES[warehouse] if warehouse is not None else None
    if protocol is _TCP or (rule is not None and rule.tcp):
        return _bypass(config, target, warehouse, Rule.TCP_BYPASS, None)
    if rule is not None and not (rule.via_http_proxy or rule.via_https_proxy):
        return _bypass(config, target, warehouse, Rule.WAREHOUSE_UNSUPPORTED, None)
    grpc = protocol is _GRPC
    no_proxy, no_proxy_name = config.no_proxy, "NO_PROXY"
    if grpc and config.no_grpc_proxy is not None:
        no_proxy, no_proxy_name = config.no_grpc_proxy, "NO_GRPC_PROXY"
    entry = no_proxy.match(target.host, target.port, ip) if no_proxy else None
    if entry is not None:
        return _make_route(
            _DIRECT, None, Rule.NO_PROXY, target, warehouse, entry, False, no_proxy_name
        )
    proxy, variable = config._proxies[protocol]  # proxy_for(), without the call
    if proxy is None:
        return _make_route(
            _DIRECT, None, Rule.NO_PROXY_CONFIGURED, target, warehouse, None, False, variable
        )
    if proxy.is_tls and rule is not None and not rule.via_https_proxy:
        return _bypass(config, target, warehouse, Rule.WAREHOUSE_HTTPS_UNSUPPORTED, variable)
    if proxy.is_tls and grpc:
        return _bypass(config, target, warehouse, Rule.GRPC_HTTPS_UNSUPPORTED, variable)
    return _make_route(_PROXY, proxy, Rule.PROXY, target, warehouse, None, False, variable)


def _bypass(
    config: ProxyConfig,
    target: Target,
    warehouse: Warehouse | None,
    rule: Rule,
    variable: str | None,
) -> Route:
    """A direct route CARTO's rules impose although a proxy may be configured."""
    return _make_route(_DIRECT, None, rule, target, warehouse, None, config.has_proxy, variable)


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
