"""carto_proxy: make Python services behave behind CARTO Self-hosted's external proxy.

Read the configuration once, then ask it how to reach each target::

    from carto_proxy import ProxyConfig

    config = ProxyConfig.from_env()
    route = config.route("https://xy12345.eu-central-1.snowflakecomputing.com")
    print(route.action, route.rule, route.reason)

Client adapters live in :mod:`carto_proxy.adapters` and are imported only when used.
"""

from importlib import import_module as _import_module

from ._version import __version__

# The public names are loaded on first access (PEP 562). The core's records are dataclasses,
# and `import dataclasses` alone costs about 19 ms (it imports inspect): a program that
# imports carto_proxy only to reach carto_proxy.adapters, the CLI's --help or __version__
# should not pay it. Type checkers read the imports below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._config import ProxyConfig
    from ._codes import Severity
    from ._diagnostics import Diagnostic, check
    from ._proxy_url import ProxyURL
    from ._routing import Action, Route, Rule
    from ._target import Protocol, Target
    from ._warehouses import Warehouse
    from .exceptions import CartoProxyError, ConfigError, MissingExtraError, TargetError
del TYPE_CHECKING

__all__ = [
    "Action",
    "CartoProxyError",
    "ConfigError",
    "Diagnostic",
    "MissingExtraError",
    "Protocol",
    "ProxyConfig",
    "ProxyURL",
    "Route",
    "Rule",
    "Severity",
    "Target",
    "TargetError",
    "Warehouse",
    "__version__",
    "check",
]

_HOMES = {
    "Action": "._routing",
    "CartoProxyError": ".exceptions",
    "ConfigError": ".exceptions",
    "Diagnostic": "._diagnostics",
    "MissingExtraError": ".exceptions",
    "Protocol": "._target",
    "ProxyConfig": "._config",
    "ProxyURL": "._proxy_url",
    "Route": "._routing",
    "Rule": "._routing",
    "Severity": "._codes",
    "Target": "._target",
    "TargetError": ".exceptions",
    "Warehouse": "._warehouses",
    "check": "._diagnostics",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(home, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
