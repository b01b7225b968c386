"""Shared test setup: no test ever sees the machine's proxy variables."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.conftest_plugin"]

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the README's venv (pip install -e '.[all]') runs the tests without it
    pass
else:
    # Properties that set no max_examples of their own (the secrets property) run a few
    # examples in the default suite, and 10,000 under `nox -s fuzz` (--hypothesis-profile=fuzz).
    _SLOW_IS_FINE = [HealthCheck.too_slow]
    settings.register_profile("suite", max_examples=20, deadline=None)
    settings.register_profile(
        "fuzz", max_examples=10_000, deadline=None, suppress_health_check=_SLOW_IS_FINE
    )
    settings.load_profile("suite")

# A hung test fails after two minutes wherever pytest-timeout is installed (nox installs it).
# pyproject.toml's configuration does not require it: the README's venv, pip install -e
# '.[all]', runs the tests too (tests/test_readme_venv.py).
TEST_TIMEOUT = 120

# Every variable any client library reads for proxies or trust, in both cases.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "GRPC_PROXY",
    "NO_PROXY",
    "NO_GRPC_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
    "SOCKS_PROXY",
)
OTHER_VARIABLES = (
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "REQUEST_METHOD",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every proxy and trust variable for the duration of a test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in OTHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # Snowflake drivers probe cloud metadata servers at login unless told not to.
    monkeypatch.setenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test :data:`TEST_TIMEOUT` unless pytest-timeout was told otherwise."""
    if not config.pluginmanager.hasplugin("timeout"):
        return
    if config.getoption("timeout", None) is not None or config.getini("timeout"):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
