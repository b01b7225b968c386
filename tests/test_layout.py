"""The package's shape (DESIGN §4): small modules, no import cycles, no private reach.

- no file in carto_proxy/ over 400 lines;
- no import cycle between carto_proxy's modules (imports under ``if TYPE_CHECKING:`` do not run
  and are left out);
- no underscore name imported from a module of another subpackage, and no private module of a
  subpackage imported from outside it (the root's private modules are the core, which every
  subpackage builds on through their public names).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "carto_proxy"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def imports(name: str, path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(module imported, name imported or None, line) for every import that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    base = name if is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base.split(".")
                parent = parent[: len(parent) - node.level + 1]
                module = ".".join([*parent, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                yield module, alias.name, node.lineno


def resolved(module: str, imported: str | None) -> str:
    """The carto_proxy module an import loads: ``from pkg import mod`` loads pkg.mod."""
    if imported is not None and f"{module}.{imported}" in modules():
        return f"{module}.{imported}"
    return module


def subpackage(name: str) -> str:
    """carto_proxy.testing._origin -> carto_proxy.testing; root modules -> carto_proxy."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or is_package(name) else parts[0]


def test_no_file_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_import_cycle() -> None:
    graph = {
        name: {
            target
            for module, imported, _ in imports(name, path)
            if (target := resolved(module, imported)) in modules() and target != name
        }
        for name, path in modules().items()
    }
    # Importing pkg.sub runs pkg's __init__ first: an edge to every enclosing package, except
    # the importer's own (a module is always imported after its package).
    for name in graph:
        implied = {
            ".".join(target.split(".")[:depth])
            for target in graph[name]
            for depth in range(2, target.count(".") + 1)
        }
        graph[name] = {
            t for t in graph[name] | implied if t != name and not name.startswith(f"{t}.")
        }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_no_private_name_crosses_a_subpackage() -> None:
    crossings = []
    for name, path in modules().items():
        home = subpackage(name)
        for module, imported, line in imports(name, path):
            if not module.startswith("carto_proxy"):
                continue
            target = resolved(module, imported)
            if target not in modules():
                continue
            there = subpackage(target)
            if there == home:
                continue
            leaf = target.rsplit(".", 1)[-1]
            private_module = there != "carto_proxy" and leaf.startswith("_") and target != there
            private_name = (
                imported is not None
                and imported.startswith("_")
                and not imported.startswith("__")
                and target == module
            )
            if private_module or private_name:
                crossings.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}.{imported}")
    assert crossings == []
