"""carto_proxy: make Python services behave behind CARTO Self-hosted's external proxy.

Read the configuration once, then ask it how to reach each target::

    from carto_proxy import ProxyConfig

    config = ProxyConfig.from_env()
    route = config.route("https://xy12345.eu-central-1.snowflakecomputing.com")
    print(route.action, route.rule, route.reason)

Client adapters live in :mod:`carto_proxy.adapters` and are imported only when used.
"""

from ._config import ProxyConfig
from ._diagnostics import Diagnostic, Severity, check
from ._proxy_url import ProxyURL
from ._routing import Action, Route, Rule
from ._target import Protocol, Target
from ._version import __version__
from ._warehouses import Warehouse
from .exceptions import CartoProxyError, ConfigError, MissingExtraError, TargetError

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
