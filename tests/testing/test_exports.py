"""carto_proxy.testing's public names: sorted, resolvable, documented, imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import carto_proxy.testing as testing

CONTRACT = {
    "RecordingProxy",
    "ProxyRecord",
    "proxy_environ",
    "record_routes",
    "assert_tunnelled",
    "assert_not_proxied",
    "block_direct",
}


def test_all_is_sorted_complete_and_documented() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    assert set(testing.__all__) >= CONTRACT
    for name in testing.__all__:
        value = getattr(testing, name)
        assert value.__doc__, name
        assert value.__module__.startswith("carto_proxy.testing._"), name
    assert set(testing.__all__) <= set(dir(testing))


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = testing.nothing_here  # type: ignore[attr-defined]


def test_names_are_imported_on_first_use() -> None:
    code = (
        "import sys, json, carto_proxy.testing as t; before = sorted(sys.modules); "
        "t.proxy_environ; after = sorted(sys.modules); "
        "new = [m for m in after if m not in before]; "
        "print(json.dumps([m for m in new if m.startswith('carto_proxy.testing')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # proxy_environ writes its CA bundles with ca_bundle, and imports no server.
    assert json.loads(out.stdout) == [
        "carto_proxy.testing._ca_files",
        "carto_proxy.testing._environ",
    ]
