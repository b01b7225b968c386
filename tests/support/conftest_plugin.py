"""Pytest fixtures for the integration harness.

Load with ``pytest_plugins = ["tests.support.conftest_plugin"]`` in ``tests/conftest.py``.
Heavy servers are session-scoped; per-test fixtures are cheap views over them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.names import DENIED_HOST, TEST_HOSTS
from tests.support.origins import Origins, start_origins
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS
from tests.support.squid import Squid, SquidLog


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Return the session's proxy, origin and untrusted CAs with their PEM files."""
    return PKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def origins(pki: PKI) -> Iterator[Origins]:
    """Yield the session's plain HTTP, HTTPS and untrusted HTTPS origin servers."""
    with start_origins(pki) as servers:
        yield servers


@pytest.fixture(scope="session")
def squid(pki: PKI) -> Iterator[Squid]:
    """Yield the session's Squid: plain and TLS listeners, test hosts, ``DENIED_HOST`` → 403.

    Skips when Squid is missing (fails instead when ``CI=true``).
    """
    with Squid(
        tls_cert=pki.proxy_cert.cert_path,
        tls_key=pki.proxy_cert.key_path,
        hosts=TEST_HOSTS,
        deny_domains=[DENIED_HOST],
        upstream_cafile=pki.origin_ca_path,
    ) as proxy:
        yield proxy


@pytest.fixture
def squid_log(squid: Squid) -> SquidLog:
    """Return a view of the session Squid's access log holding only this test's entries."""
    return squid.log_view()


@pytest.fixture
def squid_factory(pki: PKI) -> Iterator[Callable[..., Squid]]:
    """Return ``make(**kwargs) -> Squid``: started Squids (TLS by default), stopped after the test.

    Each extra Squid costs ~0.1 s to start and 1-4 s to stop; prefer the session ``squid``.
    """
    started: list[Squid] = []

    def make(**kwargs: Any) -> Squid:
        kwargs.setdefault("tls_cert", pki.proxy_cert.cert_path)
        kwargs.setdefault("tls_key", pki.proxy_cert.key_path)
        proxy = Squid(**kwargs)
        started.append(proxy)
        return proxy.start()

    yield make
    for proxy in reversed(started):
        proxy.stop()


@pytest.fixture
def fake_dns() -> Iterator[FakeDNS]:
    """Patch this process's resolver: test names → 127.0.0.1, other names refused."""
    with FakeDNS(TEST_HOSTS) as dns:
        yield dns
