"""examples/connector (the "Testing your connector" guide) runs as a user's project would.

Its files are copied into a fresh pytest session (pytester), so the guide's code is the code
that is tested, with the plugin loaded through its entry point and strict pytest settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("respx")

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "connector"
STRICT_INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest
filterwarnings = error
timeout = 60
"""
# How a connector ignores the proxy: a plain httpx client in place of the adapter's.
ROUTED = "self._http = carto_httpx.client(\n            config, base_url=base_url,"
IGNORING = (
    "self._http = httpx.Client(\n"
    "            trust_env=False,\n"
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


def test_the_same_tests_catch_a_connector_that_ignores_the_proxy(
    project: pytest.Pytester,
) -> None:
    source = project.path / "geocoder.py"
    text = source.read_text(encoding="utf-8")
    assert ROUTED in text, "the example changed: update ROUTED"
    source.write_text(text.replace(ROUTED, IGNORING), encoding="utf-8")
    # Only the tests whose direct traffic the guard catches: the others would look up
    # geocoder.example.com in real DNS once the connector goes direct.
    chosen = "through_the_proxy or https_proxy or no_proxy_hosts or without_a_network"
    result = project.runpytest("-k", chosen)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: geocoder.example.com:443 was not tunnelled through the proxy "
            "http://127.0.0.1:*: it went direct (this process resolved geocoder.example.com "
            "itself); the proxy saw: nothing",
            "*AssertionError: geocoder.example.com:443 was not tunnelled through the proxy "
            "https://localhost:*: it went direct (this process resolved geocoder.example.com "
            "itself); the proxy saw: nothing",
        ],
        consecutive=False,
    )


def test_the_https_proxy_test_catches_httpx_own_proxy_support(project: pytest.Pytester) -> None:
    # httpx reads HTTPS_PROXY itself (trust_env), but verifies an https:// proxy with its own
    # roots, never with verify= (encode/httpx#1434): NODE_EXTRA_CA_CERTS is not honoured.
    source = project.path / "geocoder.py"
    text = source.read_text(encoding="utf-8")
    env_proxies = IGNORING.replace("            trust_env=False,\n", "")
    source.write_text(text.replace(ROUTED, env_proxies), encoding="utf-8")
    result = project.runpytest("-k", "through_the_proxy or https_proxy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *GeocoderError: geocoding 'Madrid' failed: [[]SSL: CERTIFICATE_VERIFY_FAILED[]]*",
            "FAILED test_geocoder.py::test_https_proxy - *",
        ]
    )
