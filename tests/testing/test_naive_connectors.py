"""What the guide says naive connectors do, measured: the guide's own tests against each of them.

docs/testing-failures.md quotes these messages; each claim it makes about a
naive connector is asserted here. The connectors are in naive_connectors.py; the tests are
examples/connector/test_geocoder.py, run unchanged in a fresh pytest session (pytester).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.testing.naive_connectors import geocoder_source
from tests.testing.user_project import STRICT_INI

pytest.importorskip("httpx")
pytest.importorskip("requests")

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "connector"
# The guard's message, as the connector's own error wraps it (fnmatch: [[] and []] are [ ]).
WENT_DIRECT = (
    "E   *GeocoderError: geocoding '{address}' failed: carto_proxy: geocoder.example.com:443 "
    "went direct: this process looked it up itself instead of asking the proxy for it "
    "(geocoder.py:*). Its route is through the proxy {proxy}:* (HTTPS_PROXY, rule proxy). "
    "Fix: send it through the proxy (a carto_proxy adapter, or the client's own proxy "
    "setting: {proxy}:*), or add geocoder.example.com to NO_PROXY if it must go direct"
)
UNTRUSTED = "certificate verify failed: unable to get local issuer certificate"
NOTE = "A client refused a certificate (CERTIFICATE_VERIFY_FAILED). The kit's servers are*"


def run_the_guides_tests(pytester: pytest.Pytester, connector: str) -> pytest.RunResult:
    """Run examples/connector/test_geocoder.py against the naive *connector*."""
    pytester.makeini(STRICT_INI)
    test_file = EXAMPLE / "test_geocoder.py"
    (pytester.path / test_file.name).write_text(test_file.read_text("utf-8"), encoding="utf-8")
    (pytester.path / "geocoder.py").write_text(geocoder_source(connector), encoding="utf-8")
    # urllib keeps its proxies in a process-wide opener built on first use, which this
    # suite's own tests may have built already: a process of its own, like a user's run.
    if connector == "urlopen":
        return pytester.runpytest_subprocess("-p", "no:logging", "-rA", timeout=60)
    return pytester.runpytest("-p", "no:logging", "-rA")


def failure_of(result: pytest.RunResult, test: str) -> str:
    """The failure section of *test* in the output."""
    text = result.stdout.str()
    start = text.index(f"_ {test} _")
    end = text.find("\n___", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_ignoring_the_proxy_variables_goes_direct_and_says_so_in_every_test(
    pytester: pytest.Pytester,
) -> None:
    result = run_the_guides_tests(pytester, "httpx_trust_env_false")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            WENT_DIRECT.format(address="Puerta del Sol, Madrid", proxy="http://127.0.0.1"),
            WENT_DIRECT.format(address="Madrid", proxy="https://localhost"),
        ],
        consecutive=False,
    )
    # The proxy that is down: the environment the test set inside is the one judged by.
    assert "went direct" in failure_of(result, "test_proxy_down_is_a_clear_error")
    # Refused by the proxy? It never asked the proxy: going direct is what it is told.
    assert "went direct" in failure_of(result, "test_proxy_refusing_the_api_is_a_clear_error")
    # NO_PROXY sends it direct, rightly, to the origin: whose CA it does not trust.
    no_proxy = failure_of(result, "test_no_proxy_hosts_go_direct")
    assert UNTRUSTED in no_proxy
    assert "went direct" not in no_proxy
    assert "A client refused a certificate (CERTIFICATE_VERIFY_FAILED)" in no_proxy


@pytest.mark.parametrize("connector", ["httpx_plain", "requests_get"])
def test_reading_the_variables_but_not_the_ca_refuses_the_certificates(
    pytester: pytest.Pytester, connector: str
) -> None:
    result = run_the_guides_tests(pytester, connector)
    # The proxy's refusal reaches it: it does go through the proxy.
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(["PASSED test_geocoder.py::test_proxy_refusing_the_api_*"])
    for test in (
        "test_requests_go_through_the_proxy",
        "test_no_proxy_hosts_go_direct",
        "test_https_proxy",
    ):
        failure = failure_of(result, test)
        assert UNTRUSTED in failure, test
        assert "went direct" not in failure, test
        assert "A client refused a certificate (CERTIFICATE_VERIFY_FAILED)" in failure, test
    # Its own error says nothing about the route it took.
    down = failure_of(result, "test_proxy_down_is_a_clear_error")
    actual = down.partition("Actual message: ")[2].splitlines()[0]
    assert "Connection refused" in actual
    assert "carto_proxy" not in actual


def test_urlopen_keeps_the_first_proxy_it_saw(pytester: pytest.Pytester) -> None:
    result = run_the_guides_tests(pytester, "urlopen")
    result.assert_outcomes(failed=5)
    first = failure_of(result, "test_requests_go_through_the_proxy")
    assert UNTRUSTED in first
    assert "went direct" not in first
    # Later tests' proxies are never used: it connects to the first test's proxy, stopped
    # since, which the configuration of this test does not know; so that went direct.
    first_proxy = re.search(r"http_proxy='http://127\.0\.0\.1:(\d+)'", first)
    assert first_proxy is not None
    https = failure_of(result, "test_https_proxy")
    assert (
        f"carto_proxy: 127.0.0.1:{first_proxy[1]} went direct: this process connected to it "
        "itself instead of asking the proxy for it"
    ) in https
    assert "Its route is through the proxy https://localhost:" in https
