"""The tools the portability lint compares carto_proxy with, by id."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ALL_TOOLS", "TOOLS", "tool_names"]

TOOLS: dict[str, str] = {
    "go": "Go net/http",
    "curl": "curl",
    "urllib": "Python urllib",
    "requests": "Python requests",
    "httpx": "httpx",
    "proxy-from-env": "Node proxy-from-env (axios)",
    "undici": "Node undici",
    "grpc": "gRPC",
}
"""Tool ids used in :attr:`Diagnostic.tools`, with the names shown to people."""

ALL_TOOLS = tuple(TOOLS)


def tool_names(tools: Iterable[str]) -> str:
    """``"curl, Python urllib and gRPC"`` for ``("curl", "urllib", "grpc")``."""
    names = [TOOLS[t] for t in tools]
    if len(names) < 2:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
