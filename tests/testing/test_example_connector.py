"""examples/connector (the "Testing your connector" guide) runs as a user's project would.

Its files are copied into a fresh pytest session (pytester), so the guide's code is the code
that is tested, with the plugin loaded through its entry point and strict pytest settings.
What the guide's tests say about naive connectors: test_naive_connectors.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.testing.naive_connectors import geocoder_source
from tests.testing.user_project import STRICT_INI

pytest.importorskip("httpx")
pytest.importorskip("respx")  # the example's unit tests use it; they are skipped without it

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "connector"
# A connector that trusts carto_proxy's CAs, but leaves httpx to read the proxy variables.
ROUTED = "self._http = carto_httpx.client(\n            config, base_url=base_url,"
ENV_PROXIES = (
    "self._http = httpx.Client(\n"
    "            verify=(config or ProxyConfig.from_env()).ssl_context(),\n"
    "            base_url=base_url,"
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(STRICT_INI)
    for path in EXAMPLE.glob("*.py"):
        (pytester.path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return pytester


def test_the_example_and_its_tests_pass(project: pytest.Pytester) -> None:
    result = project.runpytest("-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "*test_requests_go_through_the_proxy PASSED*",
            "*test_no_proxy_hosts_go_direct PASSED*",
            "*test_https_proxy PASSED*",
            "*test_proxy_down_is_a_clear_error PASSED*",
            "*test_each_redirect_hop_is_routed_again PASSED*",
        ]
    )


def test_the_https_proxy_test_catches_httpx_own_proxy_support(project: pytest.Pytester) -> None:
    # httpx reads HTTPS_PROXY itself (trust_env), but verifies an https:// proxy with its own
    # roots, never with verify= (encode/httpx#1434): NODE_EXTRA_CA_CERTS is not honoured.
    source = project.path / "geocoder.py"
    text = source.read_text(encoding="utf-8")
    assert ROUTED in text, "the example changed: update ROUTED"
    source.write_text(text.replace(ROUTED, ENV_PROXIES), encoding="utf-8")
    result = project.runpytest("-k", "through_the_proxy or https_proxy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *GeocoderError: geocoding 'Madrid' failed: [[]SSL: CERTIFICATE_VERIFY_FAILED[]]*",
            "FAILED test_geocoder.py::test_https_proxy - *",
        ]
    )


def test_the_recipe_without_pytest_runs_and_catches_a_connector_going_direct(
    project: pytest.Pytester,
) -> None:
    # The guide's "Without pytest" recipe, as a script: a TLS proxy, the origin's CA too.
    script = str(project.path / "without_pytest.py")
    result = project.run(sys.executable, script, timeout=60)
    assert result.ret == 0, result.stderr.str()
    (project.path / "geocoder.py").write_text(geocoder_source("httpx_trust_env_false"))
    result = project.run(sys.executable, script, timeout=60)
    assert result.ret == 1
    result.stderr.fnmatch_lines(
        [
            "geocoder.GeocoderError: geocoding 'Madrid' failed: carto_proxy: "
            "geocoder.example.com:443 went direct: this process looked it up itself instead "
            "of asking the proxy for it (geocoder.py:*). Its route is through the proxy "
            "https://localhost:* (HTTPS_PROXY, rule proxy). Fix: *"
        ]
    )
