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


def decide(config: ProxyConfig, parsed: ParsedTarget, warehouse: Warehouse | None) -> Route:
    """Apply the decision order to a parsed target."""
    target = parsed.target
    warehouse = warehouse or parsed.warehouse or detect(target.host)
    rule = RULES[warehouse] if warehouse is not None else None
    if target.protocol is Protocol.TCP or (rule is not None and rule.tcp):
        return _direct(config, target, warehouse, Rule.TCP_BYPASS)
    if rule is not None and not (rule.via_http_proxy or rule.via_https_proxy):
        return _direct(config, target, warehouse, Rule.WAREHOUSE_UNSUPPORTED)
    grpc = target.protocol is Protocol.GRPC
    no_proxy, no_proxy_name = config.no_proxy, "NO_PROXY"
    if grpc and config.no_grpc_proxy is not None:
        no_proxy, no_proxy_name = config.no_grpc_proxy, "NO_GRPC_PROXY"
    entry = no_proxy.match(target.host, target.port, parsed.ip) if no_proxy else None
    if entry is not None:
        return Route(
            action=Action.DIRECT,
            proxy=None,
            rule=Rule.NO_PROXY,
            target=target,
            warehouse=warehouse,
            matched_entry=entry,
            variable=no_proxy_name,
        )
    proxy, variable = config.proxy_for(target.protocol)
    if proxy is None:
        return Route(
            action=Action.DIRECT,
            proxy=None,
            rule=Rule.NO_PROXY_CONFIGURED,
            target=target,
            warehouse=warehouse,
            variable=variable,
        )
    if proxy.is_tls and rule is not None and not rule.via_https_proxy:
        return _direct(config, target, warehouse, Rule.WAREHOUSE_HTTPS_UNSUPPORTED, variable)
    if proxy.is_tls and grpc:
        return _direct(config, target, warehouse, Rule.GRPC_HTTPS_UNSUPPORTED, variable)
    return Route(
        action=Action.PROXY,
        proxy=proxy,
        rule=Rule.PROXY,
        target=target,
        warehouse=warehouse,
        variable=variable,
    )


def _direct(
    config: ProxyConfig,
    target: Target,
    warehouse: Warehouse | None,
    rule: Rule,
    variable: str | None = None,
) -> Route:
    return Route(
        action=Action.DIRECT,
        proxy=None,
        rule=rule,
        target=target,
        warehouse=warehouse,
        needs_direct_egress=config.has_proxy,
        variable=variable,
    )


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
