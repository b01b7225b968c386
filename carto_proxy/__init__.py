"""carto_proxy: make Python services behave behind CARTO Self-hosted's external proxy.

Read the configuration once, then ask it how to reach each target::

    from carto_proxy import ProxyConfig

    config = ProxyConfig.from_env()
    route = config.route("https://xy12345.eu-central-1.snowflakecomputing.com")
    print(route.action, route.rule, route.reason)

Client adapters live in :mod:`carto_proxy.adapters` and are imported only when used.
"""

from ._lazy import lazy_exports
from ._version import __version__ as __version__

# The public names load on first use. Measured (bench/route.py, warm caches): importing them
# all costs about 23 ms, ProxyConfig alone 21 ms (dataclasses and typing are most of it), and
# `import carto_proxy` 0.5 ms; so `carto-proxy --help`, `carto_proxy.__version__` and a program
# that needs only ProxyConfig do not pay for check() and the diagnostics. Type checkers read
# the imports below; a test holds them against _HOMES.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._audit import Audit as Audit
    from ._audit import Violation as Violation
    from ._audit import audit as audit
    from ._check import check as check
    from ._codes import Severity as Severity
    from ._config import ProxyConfig as ProxyConfig
    from ._diagnostics import Diagnostic as Diagnostic
    from ._observe import RouteEvent as RouteEvent
    from ._observe import add_observer as add_observer
    from ._observe import observe as observe
    from ._proxy_url import ProxyURL as ProxyURL
    from ._routing import Action as Action
    from ._routing import Route as Route
    from ._routing import Rule as Rule
    from ._target import Protocol as Protocol
    from ._target import Target as Target
    from ._warehouses import Warehouse as Warehouse
    from .exceptions import CartoProxyError as CartoProxyError
    from .exceptions import ConfigError as ConfigError
    from .exceptions import MissingExtraError as MissingExtraError
    from .exceptions import TargetError as TargetError
del TYPE_CHECKING

_HOMES = {
    "Action": "._routing",
    "Audit": "._audit",
    "CartoProxyError": ".exceptions",
    "ConfigError": ".exceptions",
    "Diagnostic": "._diagnostics",
    "MissingExtraError": ".exceptions",
    "Protocol": "._target",
    "ProxyConfig": "._config",
    "ProxyURL": "._proxy_url",
    "Route": "._routing",
    "RouteEvent": "._observe",
    "Rule": "._routing",
    "Severity": "._codes",
    "Target": "._target",
    "TargetError": ".exceptions",
    "Violation": "._audit",
    "Warehouse": "._warehouses",
    "add_observer": "._observe",
    "audit": "._audit",
    "check": "._check",
    "observe": "._observe",
}

_names, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
__all__ = sorted([*_names, "__version__"])
del _names, lazy_exports
