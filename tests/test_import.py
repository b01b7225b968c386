"""`import carto_proxy` stays light: no client library, little time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = [
    "httpx",
    "urllib3",
    "requests",
    "aiohttp",
    "grpc",
    "google",
    "snowflake",
    "yaml",
    "trustme",
    "pandas",
    "pandas_gbq",
    "sqlalchemy",
]


def test_import_loads_no_client_library() -> None:
    code = (
        "import sys, json, carto_proxy, carto_proxy.adapters; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def test_missing_extra_names_the_install_line() -> None:
    from carto_proxy.adapters._common import import_extra
    from carto_proxy.exceptions import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"pip install 'carto-proxy\[httpx\]'"):
        import_extra("surely_not_installed_module", "httpx")
