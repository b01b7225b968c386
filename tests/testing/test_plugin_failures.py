"""The plugin's failures say what happened: which host went direct, what the proxy saw.

User projects run in a fresh pytest session (pytester); the connector: user_project.py.
"""

from __future__ import annotations

import pytest

from tests.testing.user_project import make_user

pytest_plugins = ["pytester"]


@pytest.fixture
def user(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_user(pytester)


def test_a_connector_that_ignores_the_proxy_fails_naming_the_host(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        from connector import fetch, fetch_ignoring_the_proxy

        @pytest.mark.carto_proxy(origin_hosts=["api.example.com"])
        def test_goes_through_the_proxy(carto_proxy_environ, carto_proxy_origin):
            fetch("https://api.example.com/first")  # this one is tunnelled
            fetch_ignoring_the_proxy("https://api.example.com/v1/items")
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    # Refused at the lookup, before any TLS: not a certificate error, the route.
    result.stdout.fnmatch_lines(
        [
            "E *urllib3.exceptions.NewConnectionError: HTTPSConnection(host='api.example.com',"
            " port=443): Failed to establish a new connection: carto_proxy: api.example.com:443"
            " went direct: this process looked it up itself instead of asking the proxy for it"
            " (connector.py:25). Its route is through the proxy http://127.0.0.1:*"
            " (HTTPS_PROXY, rule proxy). Fix: send it through the proxy (a carto_proxy adapter,"
            " or the client's own proxy setting: http://127.0.0.1:*), or add api.example.com to"
            " NO_PROXY if it must go direct"
        ]
    )
    assert "CERTIFICATE_VERIFY_FAILED" not in result.stdout.str()


def test_assert_tunnelled_lists_what_the_proxy_saw(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest
        import urllib3

        from carto_proxy.testing import assert_tunnelled
        from connector import fetch, fetch_ignoring_the_proxy

        @pytest.mark.carto_proxy(origin_hosts=["api.example.com", "auth.example.com"])
        def test_goes_through_the_proxy(carto_proxy_environ):
            fetch("https://auth.example.com/token")
            with pytest.raises(urllib3.exceptions.HTTPError):  # a connector that retries...
                fetch_ignoring_the_proxy("https://api.example.com/v1")
            assert_tunnelled("api.example.com:443")
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: api.example.com:443 was not tunnelled through the proxy "
            "http://127.0.0.1:*: it went direct (this process looked api.example.com up itself);"
            " the proxy saw: [[]CONNECT auth.example.com:443 → 200[]]"
        ]
    )


def test_assert_not_proxied_says_how_the_host_was_proxied(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        from carto_proxy.testing import assert_not_proxied
        from connector import fetch

        # The test expects db.internal to go direct, but NO_PROXY was left out.
        @pytest.mark.carto_proxy(origin_hosts=["db.internal"])
        def test_database_goes_direct(carto_proxy_environ):
            fetch("https://db.internal:5432/health")
            assert_not_proxied("db.internal")
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: db.internal went through the proxy (CONNECT db.internal:5432 → "
            "200), but it should have gone direct"
        ]
    )


def test_unmapped_host_reached_the_proxy_but_was_refused(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest
        import urllib3

        from carto_proxy.testing import assert_tunnelled
        from connector import fetch

        def test_forgot_origin_hosts(carto_proxy_environ):
            with pytest.raises(urllib3.exceptions.ProxyError):
                fetch("https://api.example.com/")
            assert_tunnelled("api.example.com:443", status=403)  # the refusal, as expected
            assert_tunnelled("api.example.com:443")
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: api.example.com:443 reached the proxy http://127.0.0.1:*, but not "
            "with status 200: CONNECT api.example.com:443 → 403 (*not a loopback address or "
            "mapped upstream*); map the name to a local server with upstreams=*"
        ]
    )


def test_a_name_no_server_answers_for_never_reaches_a_resolver(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        from connector import fetch

        @pytest.mark.carto_proxy(no_proxy=".internal")
        def test_unmapped(carto_proxy_environ, carto_proxy_direct_guard):
            try:
                fetch("https://files.internal/report.csv")
            finally:
                assert carto_proxy_direct_guard.blocked == ["files.internal"]
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *NewConnectionError: HTTPSConnection(host='files.internal', port=443): Failed to"
            " establish a new connection: carto_proxy: files.internal:443 was looked up, but no"
            " local server is mapped to it, and a kit test never reaches the network"
            " (connector.py:18). Fix: map the name to carto_proxy_origin with"
            " @pytest.mark.carto_proxy(origin_hosts=[[]...[]]), or let it through with"
            " @pytest.mark.carto_proxy(block_direct=False)"
        ]
    )
