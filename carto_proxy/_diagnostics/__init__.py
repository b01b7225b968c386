"""Findings about a proxy configuration: ``check()`` and the portability lint.

- :func:`check` / :func:`diagnose`: refused values and risky settings (``CP1xx``-``CP3xx``).
- :func:`lint`: how other tools (Go, curl, urllib, requests, httpx, Node, gRPC) would read the
  same values differently (``CP5xx``).
- :func:`portable`: the same configuration with NO_PROXY rewritten so that they all read it
  as carto_proxy does, where a spelling exists (``carto-proxy env --portable``).

Both return :class:`Diagnostic` records whose codes and severities come from one table,
:data:`carto_proxy._codes.CODES`.
"""

from carto_proxy._codes import Severity

from ._check import check, diagnose
from ._diagnostic import Diagnostic, from_error
from ._portability import lint
from ._portable import Portable, Rewrite, portable
from ._tools import TOOLS, tool_names

__all__ = [
    "TOOLS",
    "Diagnostic",
    "Portable",
    "Rewrite",
    "Severity",
    "check",
    "diagnose",
    "from_error",
    "lint",
    "portable",
    "tool_names",
]
