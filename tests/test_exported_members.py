"""The public names are a contract (DESIGN §2)."""

from __future__ import annotations

import types

import carto_proxy

CONTRACT = {
    "ProxyConfig",
    "Route",
    "Action",
    "Rule",
    "Target",
    "Protocol",
    "Warehouse",
    "ProxyURL",
    "Diagnostic",
    "Severity",
    "check",
    "CartoProxyError",
    "ConfigError",
    "TargetError",
    "MissingExtraError",
}


def test_all_is_sorted_and_complete() -> None:
    exported = set(carto_proxy.__all__)
    assert carto_proxy.__all__ == sorted(carto_proxy.__all__)
    assert exported >= CONTRACT
    for name in exported:
        assert hasattr(carto_proxy, name)
    # '@py_builtins' and the like come from pytest's assertion rewriting of the plugin package.
    public = {name for name in dir(carto_proxy) if not name.startswith(("_", "@"))}
    extra = {
        name
        for name in public - exported
        if not isinstance(getattr(carto_proxy, name), types.ModuleType)
    }
    assert extra == set()  # only submodules (adapters, testing, cli…) besides __all__


def test_public_names_are_documented() -> None:
    for name in carto_proxy.__all__:
        if name != "__version__":
            assert getattr(carto_proxy, name).__doc__, name


def test_error_tree() -> None:
    assert issubclass(carto_proxy.ConfigError, carto_proxy.CartoProxyError)
    assert issubclass(carto_proxy.ConfigError, ValueError)
    assert issubclass(carto_proxy.TargetError, ValueError)
    assert issubclass(carto_proxy.MissingExtraError, ImportError)
