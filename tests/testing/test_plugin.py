"""The pytest plugin, run the way users run it: test files in a fresh pytest session (pytester).

Its failure messages: test_plugin_failures.py; ``--carto-proxy-audit``: test_plugin_audit.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.testing.user_project import make_user

pytest_plugins = ["pytester"]


@pytest.fixture
def user(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_user(pytester)


def test_a_users_tests_with_every_fixture_pass(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import json
        import os

        import pytest

        from carto_proxy import Action, ProxyConfig, Rule
        from carto_proxy.testing import assert_not_proxied, assert_tunnelled
        from connector import fetch

        @pytest.mark.carto_proxy(origin_hosts=["api.example.com"])
        def test_proxied_path(carto_proxy_environ, carto_proxy_origin):
            response = fetch("https://api.example.com/v1/items")
            assert response.status == 200
            assert json.loads(response.data)["server_name"] == "api.example.com"
            record = assert_tunnelled("api.example.com:443")
            assert record.bytes_down > 0
            (request,) = carto_proxy_origin.requests
            assert request.path == "/v1/items" and request.tls

        @pytest.mark.carto_proxy(origin_hosts=["db.internal"], no_proxy=".internal")
        def test_no_proxy_path(carto_proxy_environ, carto_proxy_direct_guard):
            assert fetch("https://db.internal/health").status == 200
            assert_not_proxied("db.internal")
            assert carto_proxy_direct_guard.went_direct("db.internal")

        @pytest.mark.carto_proxy(tls=True, origin_hosts=["api.example.com"])
        def test_https_proxy_path(carto_proxy_environ, carto_proxy_tls_proxy):
            assert carto_proxy_environ.https_proxy.scheme == "https"
            assert os.environ["HTTPS_PROXY"] == carto_proxy_tls_proxy.url
            assert fetch("https://api.example.com/").status == 200
            assert_tunnelled("https://api.example.com/", proxy=carto_proxy_tls_proxy)

        def test_config_without_environ(carto_proxy_config, carto_proxy_recording_proxy):
            assert "HTTPS_PROXY" not in os.environ
            route = carto_proxy_config.route("https://auth.carto.com")
            assert route.action is Action.PROXY
            assert str(route.proxy) == carto_proxy_recording_proxy.url
            assert carto_proxy_config.grpc_proxy == carto_proxy_config.https_proxy

        def test_clean_environ(carto_proxy_clean_environ):
            assert not ProxyConfig.from_env().has_proxy
        """
    )
    result = user.runpytest("-v")
    result.assert_outcomes(passed=5)


def test_session_proxy_is_shared_but_each_test_starts_clean(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest
        import urllib3

        from connector import fetch

        seen = []

        @pytest.mark.parametrize("attempt", [1, 2, 3])
        def test_each_sees_only_its_own(carto_proxy_environ, carto_proxy_recording_proxy, attempt):
            seen.append(carto_proxy_recording_proxy)
            assert carto_proxy_recording_proxy.records == []
            if attempt == 1:
                carto_proxy_recording_proxy.refuse("api.example.com", 503)
            with pytest.raises(urllib3.exceptions.ProxyError):
                fetch("https://api.example.com/")
            (record,) = carto_proxy_recording_proxy.wait_for(1)
            # The fault from the first test must not leak: later ones get the usual 403.
            assert record.status == (503 if attempt == 1 else 403)

        def test_one_proxy_for_the_session():
            assert len(seen) == 3 and seen[0] is seen[1] is seen[2]

        @pytest.mark.carto_proxy(upstreams={"api.example.com": ("127.0.0.1", 9)})
        def test_upstreams_get_their_own_proxy(carto_proxy_recording_proxy):
            assert carto_proxy_recording_proxy is not seen[0]
        """
    )
    result = user.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=5)


def test_overriding_the_upstreams_fixture(user: pytest.Pytester) -> None:
    user.makeconftest(
        """
        import pytest

        @pytest.fixture
        def carto_proxy_upstreams(carto_proxy_origin):
            return carto_proxy_origin.upstreams("api.example.com")
        """
    )
    user.makepyfile(
        test_user="""
        import pytest
        import urllib3

        from carto_proxy.testing import assert_tunnelled
        from connector import fetch

        def test_reaches_the_origin(carto_proxy_environ, carto_proxy_origin):
            assert fetch("https://api.example.com/").status == 200
            assert_tunnelled("api.example.com:443")
            assert [r.server_name for r in carto_proxy_origin.requests] == ["api.example.com"]
        """
    )
    user.runpytest().assert_outcomes(passed=1)


def test_config_trusts_the_cas_in_use(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.carto_proxy(tls=True, no_proxy=["localhost", ".internal"])
        def test_tls(carto_proxy_config, carto_proxy_recording_proxy, carto_proxy_origin):
            pem = carto_proxy_config.extra_ca_pem
            assert carto_proxy_recording_proxy.ca_pem.strip() in pem
            assert carto_proxy_origin.ca_pem.strip() in pem
            assert str(carto_proxy_config.no_proxy) == "localhost,.internal"
            assert carto_proxy_config.grpc_proxy is None  # CARTO: no GRPC_PROXY for https://

        def test_plain_without_origin(carto_proxy_config):
            assert carto_proxy_config.extra_ca_pem is None
            assert carto_proxy_config.https_proxy.scheme == "http"
        """
    )
    user.runpytest().assert_outcomes(passed=2)


def test_config_trusts_the_cas_the_test_adds(user: pytest.Pytester) -> None:
    # A server of the user's own, with a CA of its own, behind the kit's TLS proxy.
    user.makeconftest(
        """
        import pytest

        from carto_proxy.testing import LocalOrigin

        @pytest.fixture(scope="session")
        def my_api():
            with LocalOrigin() as server:  # its own CA, not the kit's origin's
                yield server

        @pytest.fixture
        def carto_proxy_upstreams(my_api):
            return my_api.upstreams("api.example.com")

        @pytest.fixture
        def carto_proxy_ca_files(my_api):
            return [my_api.ca_file]
        """
    )
    user.makepyfile(
        test_user="""
        import pytest

        from carto_proxy.testing import assert_tunnelled
        from connector import fetch

        @pytest.mark.carto_proxy(tls=True)
        def test_both_hops_verified(carto_proxy_config, carto_proxy_tls_proxy, my_api):
            pem = carto_proxy_config.extra_ca_pem
            assert carto_proxy_tls_proxy.ca_pem in pem and my_api.ca_pem in pem
            assert fetch("https://api.example.com/", carto_proxy_config).status == 200
            assert_tunnelled("api.example.com:443")

        """
    )
    user.runpytest().assert_outcomes(passed=1)


def test_the_markers_ca_files_are_trusted_and_checked(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        from pathlib import Path

        import pytest
        import trustme

        trustme.CA().cert_pem.write_to_path("mine.pem")

        @pytest.mark.carto_proxy(ca_files=["mine.pem"])
        def test_trusted(carto_proxy_config, carto_proxy_ca_files):
            assert carto_proxy_ca_files == ["mine.pem"]
            assert Path("mine.pem").read_text() in carto_proxy_config.extra_ca_pem

        @pytest.mark.carto_proxy(ca_files="missing.pem")
        def test_a_missing_one_is_named(carto_proxy_config):
            pass
        """
    )
    result = user.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["E   *ConfigError: NODE_EXTRA_CA_CERTS*missing.pem*"])


def test_markers_merge_closest_first(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        import pytest

        pytestmark = pytest.mark.carto_proxy(no_proxy="module.example", tls=True)

        @pytest.mark.carto_proxy(no_proxy="function.example")
        def test_closest_wins_per_key(carto_proxy_config):
            assert str(carto_proxy_config.no_proxy) == "function.example"
            assert carto_proxy_config.https_proxy.scheme == "https"
        """
    )
    user.runpytest().assert_outcomes(passed=1)


def test_marker_is_registered_and_checked(user: pytest.Pytester) -> None:
    result = user.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.carto_proxy(no_proxy=None, tls=False, *"])
    user.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.carto_proxy(no_prxy="typo.example")
        def test_typo(carto_proxy_config):
            pass
        """
    )
    result = user.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.carto_proxy takes keyword arguments*no_prxy*"])


def test_environ_fixture_clears_then_restores_the_environment(
    user: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://machine-wide:1080")
    monkeypatch.setenv("no_proxy", "machine.local")
    monkeypatch.setenv("NODE_TLS_REJECT_UNAUTHORIZED", "0")
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    user.makepyfile(
        test_user="""
        import os

        def test_sets(carto_proxy_environ):
            assert os.environ["https_proxy"] == os.environ["HTTPS_PROXY"]
            assert os.environ["NODE_TLS_REJECT_UNAUTHORIZED"] == "1"
            assert "ALL_PROXY" not in os.environ and "no_proxy" not in os.environ
            os.environ["NO_GRPC_PROXY"] = "changed.by.the.test"

        def test_clean(carto_proxy_clean_environ):
            assert "ALL_PROXY" not in os.environ and "HTTPS_PROXY" not in os.environ
        """
    )
    user.runpytest().assert_outcomes(passed=2)
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert after == before


def test_helpers_outside_the_fixtures_ask_for_a_proxy(user: pytest.Pytester) -> None:
    user.makepyfile(
        test_user="""
        from carto_proxy.testing import assert_tunnelled

        def test_no_fixture():
            assert_tunnelled("api.example.com:443")
        """
    )
    result = user.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TypeError: assert_tunnelled() needs proxy=*"])


def test_fixtures_needing_the_extra_name_it(user: pytest.Pytester) -> None:
    user.makeconftest(
        """
        import sys

        sys.modules["trustme"] = None  # as if carto-proxy[testing] were not installed
        """
    )
    user.makepyfile(
        test_user="""
        def test_plain_proxy_needs_nothing_more(carto_proxy_environ):
            pass

        def test_tls(carto_proxy_tls_proxy):
            pass

        def test_origin(carto_proxy_origin):
            pass
        """
    )
    result = user.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*MissingExtraError: trustme is not installed; install it with: "
            "pip install 'carto-proxy[[]testing[]]'"
        ]
    )


def test_loading_the_plugin_imports_only_pytest_and_the_core() -> None:
    code = (
        "import sys, json; import carto_proxy.testing.plugin; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('carto_proxy', 'trustme', 'httpx', 'urllib3')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert "carto_proxy.testing.plugin" in loaded
    assert not [name for name in loaded if name.startswith(("trustme", "httpx", "urllib3"))]
    testing = [name for name in loaded if name.startswith("carto_proxy.testing")]
    assert testing == [
        "carto_proxy.testing",
        "carto_proxy.testing._plugin_support",
        "carto_proxy.testing.plugin",
    ]
