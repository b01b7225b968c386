"""What every adapter shares: routing a request, importing its library, refusing arguments
that would defeat the routing."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._observers import notify
from carto_proxy._routing import Route
from carto_proxy._target import Protocol
from carto_proxy._warehouses import Warehouse
from carto_proxy.exceptions import ConfigError, MissingExtraError

__all__ = ["decide", "import_extra", "refuse_arguments", "resolve_config"]


def resolve_config(config: ProxyConfig | None) -> ProxyConfig:
    """``config``, or :meth:`ProxyConfig.from_env` when it is ``None``."""
    return ProxyConfig.from_env() if config is None else config


def decide(
    config: ProxyConfig,
    target: str,
    *,
    protocol: Protocol | None = None,
    warehouse: Warehouse | None = None,
) -> Route:
    """Route *target* and report the decision to observers (``record_routes``)."""
    route = config.route(target, protocol=protocol, warehouse=warehouse)
    notify(route)
    return route


def import_extra(module: str, extra: str) -> ModuleType:
    """Import *module*, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(extra, module.partition(".")[0]) from error


def refuse_arguments(
    given: Mapping[str, Any], names: Iterable[str], *, adapter: str, fix: str
) -> None:
    """Raise :class:`ConfigError` when *given* holds any of *names*.

    Those arguments (``proxy=``, ``mounts=``, ``verify=False``…) would let the client route or
    trust on its own, behind carto_proxy's decision.
    """
    for name in names:
        if name in given:
            raise ConfigError(
                f"{adapter}({name}=...)",
                None,
                "this argument would bypass carto_proxy's routing or TLS settings",
                fix,
                code="CP400",
            )
