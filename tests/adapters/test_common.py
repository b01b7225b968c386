"""carto_proxy.adapters._common, as each adapter uses it: a missing library names its extra."""

from __future__ import annotations

import importlib
import sys

import pytest

from carto_proxy import MissingExtraError


@pytest.mark.parametrize(
    ("adapter", "library", "extra"),
    [
        ("httpx", "httpx", "httpx"),
        ("requests", "requests", "requests"),
        ("urllib3", "urllib3", "urllib3"),
        ("grpc", "grpc", "grpc"),
        ("bigquery", "google.cloud.bigquery", "bigquery"),
        ("snowflake", "snowflake.connector", "snowflake"),
        ("pandas_gbq", "pandas_gbq", "pandas-gbq"),
    ],
)
def test_missing_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, adapter: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # makes `import <library>` fail
    # Import the adapter afresh (monkeypatch puts an already imported one back afterwards).
    monkeypatch.delitem(sys.modules, f"carto_proxy.adapters.{adapter}", raising=False)
    with pytest.raises(MissingExtraError) as missing:
        importlib.import_module(f"carto_proxy.adapters.{adapter}")
    assert f"pip install 'carto-proxy[{extra}]'" in str(missing.value)
    assert isinstance(missing.value, ImportError)
    assert isinstance(missing.value.__cause__, ImportError)
