"""``carto-proxy audit`` puts this directory first on ``PYTHONPATH``: audit this Python process,
then run the ``sitecustomize`` this module hides, if there is one.

Python imports ``sitecustomize`` at start-up (unless ``-S`` or ``-I``), so every Python
process the audited program starts audits itself too. Nothing here may stop the program: a
failure is reported on standard error and the program runs unaudited.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys


def _audit() -> None:
    try:
        from carto_proxy._audit_run import start_from_environment
    except ImportError:  # another interpreter: borrow the auditing parent's carto_proxy
        settings = json.loads(os.environ.get("CARTO_PROXY_AUDIT", "{}"))
        sys.path.append(settings.get("package", ""))
        from carto_proxy._audit_run import start_from_environment
    start_from_environment()


def _chain() -> None:
    """Import the next ``sitecustomize`` on ``sys.path`` (a distribution's), as Python would."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _audit()
except Exception as error:  # never stop the program for the audit's sake
    sys.stderr.write(f"carto-proxy audit: this Python process is not audited: {error}\n")
_chain()
