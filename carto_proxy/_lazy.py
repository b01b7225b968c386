"""One lazy loader for the packages whose public names are imported on first use (PEP 562).

``carto_proxy`` and ``carto_proxy.testing`` use it, for measured reasons their docstrings give.
Names are not cached in the package's globals: the module in ``sys.modules`` stays the one
source of truth, even where ``sys.modules`` is rolled back between sessions (pytester's
in-process runs). A lookup costs one dictionary hit and ``getattr``; hot code imports the name
once (``from carto_proxy import ProxyConfig``).
"""

from __future__ import annotations

import importlib

# typing and collections cost several milliseconds at start-up; only type checkers need them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """Return ``__all__``, ``__getattr__`` and ``__dir__`` for *package*.

    Args:
        package: the package's ``__name__``.
        homes: each public name and the module (relative to *package*) that defines it.
    """
    names = sorted(homes)

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home, package), name)

    def __dir__() -> list[str]:
        module = importlib.import_module(package)
        return sorted({*vars(module), *names})

    return names, __getattr__, __dir__
