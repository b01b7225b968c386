"""Findings about a built proxy configuration: the diagnostics and the portability lint.

- :func:`diagnose`: refused values and risky settings (``CP1xx``-``CP3xx``) of a built
  configuration; :func:`carto_proxy.check` (``_check.py``) reads a source and calls it.
- :func:`lint`: how other tools (Go, curl, urllib, requests, httpx, Node, gRPC) would read the
  same values differently (``CP5xx``).
- :func:`entry_rules`: the portability table the lint reports, with the spelling every tool
  reads alike where one exists (:attr:`EntryRule.rewrite`), which
  :func:`carto_proxy._portable.portable` (``carto-proxy env --portable``) writes.

Both return :class:`Diagnostic` records whose codes and severities come from one table,
:data:`carto_proxy._codes.CODES`.
"""

from carto_proxy._codes import Severity

from ._diagnose import diagnose
from ._diagnostic import Diagnostic, from_error
from ._portability import exclusion_lists, lint
from ._portability_entries import EntryRule, entry_rules
from ._tools import TOOLS, tool_names

__all__ = [
    "TOOLS",
    "Diagnostic",
    "EntryRule",
    "Severity",
    "diagnose",
    "entry_rules",
    "exclusion_lists",
    "from_error",
    "lint",
    "tool_names",
]
