"""YAML for Helm values, read with bounds: PyYAML's safe loader, refusing bombs; and written.

Two shapes of a small file exhaust a plain ``yaml.safe_load``: nested aliases (500 bytes that
stand for a billion nodes, "billion laughs": the load itself is quick, but anything that then
walks the result takes minutes and gigabytes) and deep nesting (``[[[[...]]]]``: PyYAML's
composer recurses once per level, into ``RecursionError``). The loader refuses both before
building any Python object: at most :data:`MAX_DEPTH` levels, counted through aliases, and at
most :data:`MAX_NODES` nodes once every alias is expanded. Real Helm values are a few levels
deep and a few thousand nodes at most.

Imported only when Helm values are read or written: it needs PyYAML (extra ``helm``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "Refused", "dump", "load"]

MAX_DEPTH = 64
MAX_NODES = 100_000
# Quoted document text in a PyYAML message ("found undefined alias 'x'") may be a secret.
_QUOTED = re.compile(r"'[^'<]{2,}'|\"[^\"<]{2,}\"")


class Refused(ValueError):
    """The document is not valid YAML, or is too deep or too large once aliases expand."""


def load(stream: IO[str]) -> Any:
    """Load one YAML document with the safe loader and the bounds above.

    Raises:
        Refused: the reason, with the line and column for a syntax error; never a snippet of
            the document, which may hold a password.
    """
    try:
        return yaml.load(stream, Loader=_BoundedLoader)  # a SafeLoader, with bounds
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = _QUOTED.sub("'…'", error.problem or "syntax error")
        raise Refused(f"not valid YAML ({where}{problem})") from None
    except yaml.YAMLError as error:
        raise Refused(f"not valid YAML ({type(error).__name__})") from None


def dump(values: Mapping[str, Any]) -> str:
    """*values* as YAML, PEM blocks as literal (``|``) scalars, keys in their order."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    dumped: str = yaml.dump(dict(values), Dumper=Dumper, sort_keys=False, allow_unicode=True)
    return dumped.rstrip("\n")


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing documents deeper or larger than the bounds."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # The composer recurses once per level: stop it long before Python's stack does.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand beyond the bounds, or refer to themselves.

    Depth-first, without recursion; each node is measured once (an alias is the same node
    object as its anchor), so the cost is the size of the document, not of its expansion.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_nodes: set[int] = set()  # the path from the root to the current node
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes = [measured[id(child)] for child in _children(node)]
            size = 1 + sum(s for s, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            if size > MAX_NODES:
                raise Refused(f"aliases expand to more than {MAX_NODES:,} values")
            if depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep (through aliases)")
            measured[key] = size, depth
        elif key in open_nodes:
            raise Refused("an alias refers to a value that contains it")
        elif key not in measured:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
