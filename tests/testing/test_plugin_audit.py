"""``--carto-proxy-audit`` (ini ``carto_proxy_audit = true``): a test whose code went around its
proxy configuration fails, naming the host and the line, even when the code swallowed the error.
"""

from __future__ import annotations

import pytest

from tests.testing.user_project import make_user

pytest_plugins = ["pytester"]

# A connector that falls back quietly when its direct request fails: only an audit sees it.
SWALLOWING = """
import pytest
import urllib3

from connector import fetch, fetch_ignoring_the_proxy


def fetch_or_none(url, config=None):
    try:
        return fetch_ignoring_the_proxy(url, config)
    except urllib3.exceptions.HTTPError:
        return None


@pytest.mark.carto_proxy(origin_hosts=["api.example.com"])
def test_swallows_the_refusal(carto_proxy_environ):
    assert fetch("https://api.example.com/through").status == 200
    assert fetch_or_none("https://api.example.com/around") is None
"""
CLEAN = """
import pytest

from carto_proxy.testing import assert_not_proxied, assert_tunnelled
from connector import fetch


@pytest.mark.carto_proxy(origin_hosts=["api.example.com", "db.internal"], no_proxy=".internal")
def test_proxied_and_direct(carto_proxy_environ, carto_proxy_origin):
    assert fetch("https://api.example.com/v1").status == 200  # the proxy connects upstream
    assert fetch("https://db.internal/health").status == 200  # direct, to the origin's port
    assert_tunnelled("api.example.com:443")
    assert_not_proxied("db.internal")


def test_without_the_kit():
    assert True
"""
REPORT = [
    "*carto_proxy audit: this test went around its proxy configuration 1 time(s):",
    "*  api.example.com:443 looked up directly at connector.py:25: its route is through the "
    "proxy http://127.0.0.1:* (HTTPS_PROXY, rule proxy)",
    "*Fix: send these through the proxy (a carto_proxy adapter, or the client's own proxy "
    "setting), or list the hosts that must go direct in NO_PROXY (the marker's no_proxy=)",
]


@pytest.fixture
def user(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_user(pytester)


def test_without_the_audit_a_swallowed_refusal_passes(user: pytest.Pytester) -> None:
    user.makepyfile(test_user=SWALLOWING)
    user.runpytest().assert_outcomes(passed=1)


def test_the_option_fails_the_test_naming_the_host_and_the_line(user: pytest.Pytester) -> None:
    user.makepyfile(test_user=SWALLOWING)
    result = user.runpytest("--carto-proxy-audit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(REPORT)


def test_the_ini_setting_does_the_same(user: pytest.Pytester) -> None:
    user.makeini(
        """
        [pytest]
        addopts = --strict-markers --strict-config -p no:cacheprovider -p no:hypothesispytest
        carto_proxy_audit = true
        """
    )
    user.makepyfile(test_user=SWALLOWING)
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(REPORT)


def test_it_catches_what_block_direct_false_lets_through(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        from connector import fetch_ignoring_the_proxy

        @pytest.mark.carto_proxy(origin_hosts=["api.example.com"], block_direct=False)
        def test_reaches_the_origin_directly(carto_proxy_environ):
            assert fetch_ignoring_the_proxy("https://api.example.com/").status == 200
        """
    )
    user.runpytest().assert_outcomes(passed=1)
    result = user.runpytest("--carto-proxy-audit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(REPORT)


def test_it_judges_by_the_configuration_the_test_was_given(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        from connector import fetch_ignoring_the_proxy

        @pytest.mark.carto_proxy(origin_hosts=["api.example.com"], block_direct=False)
        def test_given_the_config(carto_proxy_config):
            response = fetch_ignoring_the_proxy("https://api.example.com/", carto_proxy_config)
            assert response.status == 200
        """
    )
    result = user.runpytest("--carto-proxy-audit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(REPORT)


def test_proxied_and_direct_traffic_and_the_kits_own_servers_are_fine(
    user: pytest.Pytester,
) -> None:
    user.makepyfile(test_user=CLEAN)
    user.runpytest("--carto-proxy-audit").assert_outcomes(passed=2)


def test_a_test_failing_anyway_gets_the_list_as_a_report_section(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user=SWALLOWING.replace(
            'assert fetch_or_none("https://api.example.com/around") is None',
            'assert fetch_or_none("https://api.example.com/around") is not None',
        )
    )
    result = user.runpytest("--carto-proxy-audit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- Captured carto-proxy-audit call -*", *REPORT])
