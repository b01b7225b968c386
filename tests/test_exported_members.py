"""The public names are a contract (DESIGN §2)."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import carto_proxy
import carto_proxy.testing

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
    "observe",
    "add_observer",
    "RouteEvent",
    "audit",
    "Audit",
    "Violation",
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


def typing_imports(package: types.ModuleType) -> dict[str, str]:
    """The ``if TYPE_CHECKING:`` imports of *package*'s ``__init__``: name -> module."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text(encoding="utf-8"))
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]
    return {
        alias.name: "." * node.level + (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


@pytest.mark.parametrize("package", [carto_proxy, carto_proxy.testing])
def test_type_checkers_see_the_names_the_loader_serves(package: types.ModuleType) -> None:
    # The lazy loader's table and the imports type checkers read must name the same homes.
    assert typing_imports(package) == package._HOMES
    assert set(package.__all__) - {"__version__"} == set(package._HOMES)
