"""pytest plugin for carto_proxy's testing kit, loaded through the ``pytest11`` entry point.

Fixtures (all function-scoped views; the servers behind them are shared by the session):

``carto_proxy_recording_proxy``
    A running :class:`~carto_proxy.testing.RecordingProxy`, cleared and without faults: plain,
    or TLS with ``@pytest.mark.carto_proxy(tls=True)``. It is the proxy the configuration
    fixtures point at, and the default of the ``assert_*`` helpers.
``carto_proxy_tls_proxy``
    A running TLS ``RecordingProxy`` (the same one when the marker says ``tls=True``).
``carto_proxy_origin``
    A running :class:`~carto_proxy.testing.LocalOrigin`, cleared: it answers any host name.
``carto_proxy_config``
    A :class:`~carto_proxy.ProxyConfig` pointing at ``carto_proxy_recording_proxy``, as
    CARTO's ``.env`` would, with the marker's ``no_proxy`` and ``NODE_EXTRA_CA_CERTS`` holding
    every CA in use at once: the TLS proxy's, the origin's and ``carto_proxy_ca_files``.
``carto_proxy_environ``
    ``carto_proxy_config`` written to ``os.environ`` with
    :func:`~carto_proxy.testing.proxy_environ`; every other proxy variable cleared.
``carto_proxy_clean_environ``
    No proxy variable at all, restored afterwards.
``carto_proxy_direct_guard``
    The active :class:`~carto_proxy.testing.DirectGuard` of
    :func:`~carto_proxy.testing.block_direct`, which guards every test that uses a
    ``carto_proxy_*`` fixture or the marker: going around the proxy fails at once, saying
    that the host went direct, and nothing leaves loopback; ``origin_hosts`` resolve to
    ``carto_proxy_origin``. ``block_direct=False`` opts out: names are only recorded.
``carto_proxy_upstreams``
    Where the proxy sends each name: the marker's ``upstreams`` plus its ``origin_hosts``
    (sent to ``carto_proxy_origin``). Override it to compute upstreams from your own fixtures.
``carto_proxy_ca_files``
    CA files the configuration trusts as well: the marker's ``ca_files``. Override it to add
    the CAs your own fixtures make.

The marker::

    @pytest.mark.carto_proxy(no_proxy=".internal", tls=True,
                             origin_hosts=["api.example.com"], upstreams={...},
                             ca_files=[...], block_direct=True)

``--carto-proxy-audit`` (or the ini setting ``carto_proxy_audit = true``) fails every test
whose code went around its proxy configuration, naming the host and the line, even when the
code under test swallowed the error (:mod:`carto_proxy.testing._audit_mode`).

A test whose proxy needs upstreams gets a proxy of its own, started and stopped around it
(under a millisecond; a few for a TLS proxy, whose CA is made for it); others share the
session's. This module imports only pytest, carto_proxy's core and the fixtures' settings
(:mod:`carto_proxy.testing._plugin_support`): the servers are imported when a fixture first
needs them, so loading the plugin costs about 4 ms in other test runs.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from carto_proxy._config import ProxyConfig
from carto_proxy.testing._plugin_support import MARKER, Servers, Settings

if TYPE_CHECKING:
    from carto_proxy.testing._block import Blocking
    from carto_proxy.testing._direct import DirectGuard
    from carto_proxy.testing._origin import LocalOrigin
    from carto_proxy.testing._recording_proxy import RecordingProxy

__all__ = [
    "carto_proxy_ca_files",
    "carto_proxy_clean_environ",
    "carto_proxy_config",
    "carto_proxy_direct_guard",
    "carto_proxy_environ",
    "carto_proxy_origin",
    "carto_proxy_recording_proxy",
    "carto_proxy_servers",
    "carto_proxy_tls_proxy",
    "carto_proxy_upstreams",
]

_MARKER_HELP = (
    "carto_proxy(no_proxy=None, tls=False, upstreams=None, origin_hosts=(), ca_files=(),"
    " block_direct=True): configure the carto_proxy_* fixtures: NO_PROXY for the"
    " configuration, a TLS proxy, where the proxy sends names ({'host[:port]': (ip, port)}),"
    " names served by carto_proxy_origin, more CA files to trust, and whether going direct"
    " (or beyond loopback) fails at once"
)
_GUARD_HINT = (
    "map the name to carto_proxy_origin with @pytest.mark.carto_proxy(origin_hosts=[...]), "
    "or let it through with @pytest.mark.carto_proxy(block_direct=False)"
)
_BLOCKING: pytest.StashKey[Blocking] = pytest.StashKey()  # the test's guard, for carto_proxy_config
_AUDIT_HELP = (
    "fail every test whose code looked up or connected to a host around its proxy "
    "configuration (the carto_proxy_config in use, else the environment), naming the host "
    "and the line"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--carto-proxy-audit`` and the ini setting ``carto_proxy_audit``."""
    group = parser.getgroup("carto_proxy", "carto_proxy's testing kit")
    group.addoption("--carto-proxy-audit", action="store_true", default=False, help=_AUDIT_HELP)
    parser.addini("carto_proxy_audit", _AUDIT_HELP, type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``carto_proxy`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line("markers", _MARKER_HELP)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Under ``--carto-proxy-audit``, fail a test whose code went around the configuration."""
    if not (item.config.getoption("carto_proxy_audit") or item.config.getini("carto_proxy_audit")):
        return (yield)
    from carto_proxy.testing._audit_mode import TestAudit

    with TestAudit(item) as audited:
        try:
            result = yield
        except BaseException:
            audited.report()
            raise
    audited.fail()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Say why a client refused a certificate of the kit's servers, when a kit test failed so."""
    report: pytest.TestReport = yield
    config = getattr(item, "funcargs", {}).get("carto_proxy_config")
    if (
        report.when == "call"
        and report.failed
        and isinstance(config, ProxyConfig)
        and call.excinfo is not None
        and _refused_a_certificate(call.excinfo.value)
    ):
        report.sections.append(("carto_proxy", _CERTIFICATE_NOTE % config.extra_ca_file))
    return report


_CERTIFICATE_NOTE = (
    "A client refused a certificate (CERTIFICATE_VERIFY_FAILED). The kit's servers are signed "
    "by test CAs, which this test's configuration trusts through NODE_EXTRA_CA_CERTS (%s), as "
    "CARTO's does for a TLS or TLS-inspecting proxy. A client that verifies with its own roots "
    "(a plain httpx.Client(), requests, urllib) refuses them, as it would refuse the "
    "customer's proxy CA. Give it carto_proxy's trust: a carto_proxy adapter, or "
    "verify=config.ssl_context() (config.ca_bundle_path() where a file is needed)."
)


def _refused_a_certificate(error: BaseException | None) -> bool:
    """Whether *error*, or an error it was raised from or while handling, refused a certificate."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@pytest.fixture(scope="session")
def carto_proxy_servers() -> Iterator[Servers]:
    """Own the session's shared proxies and origin; the other fixtures are views on them."""
    servers = Servers()
    yield servers
    servers.stop()


# Every function-scoped fixture asks for carto_proxy_direct_guard, so that a test using any of
# them, even through request.getfixturevalue(), is guarded from its start.


@pytest.fixture
def carto_proxy_upstreams(
    request: pytest.FixtureRequest, carto_proxy_direct_guard: DirectGuard
) -> dict[str, tuple[str, int]]:
    """Return where the proxy sends names: the marker's ``upstreams`` and ``origin_hosts``."""
    settings = Settings.of(request.node)
    upstreams = dict(settings.upstreams or {})
    if settings.origin_hosts:
        origin: LocalOrigin = request.getfixturevalue("carto_proxy_origin")
        upstreams.update(origin.upstreams(settings.origin_hosts))
    return upstreams


@pytest.fixture
def carto_proxy_origin(
    carto_proxy_servers: Servers, carto_proxy_direct_guard: DirectGuard
) -> LocalOrigin:
    """Return the session's :class:`LocalOrigin`, with no request recorded yet."""
    return carto_proxy_servers.origin()


@contextmanager
def _proxy(request: pytest.FixtureRequest, *, tls: bool) -> Iterator[RecordingProxy]:
    upstreams: dict[str, tuple[str, int]] = request.getfixturevalue("carto_proxy_upstreams")
    if not upstreams:
        servers: Servers = request.getfixturevalue("carto_proxy_servers")
        yield servers.proxy(tls=tls)
        return
    # A RecordingProxy's upstreams are fixed when it is made: this test needs its own.
    from carto_proxy.testing._recording_proxy import RecordingProxy

    with RecordingProxy(tls=tls, upstreams=upstreams) as proxy:
        yield proxy


@pytest.fixture
def carto_proxy_recording_proxy(
    request: pytest.FixtureRequest, carto_proxy_direct_guard: DirectGuard
) -> Iterator[RecordingProxy]:
    """Yield the running proxy this test's configuration uses: plain, or TLS if the marker says.

    It is the default proxy of ``assert_tunnelled`` and the other helpers.
    """
    from carto_proxy.testing._assertions import using

    with _proxy(request, tls=Settings.of(request.node).tls) as proxy, using(proxy):
        yield proxy


@pytest.fixture
def carto_proxy_tls_proxy(
    request: pytest.FixtureRequest, carto_proxy_direct_guard: DirectGuard
) -> Iterator[RecordingProxy]:
    """Yield a running TLS proxy (``https://localhost:PORT``); its CA is ``ca_file``.

    Raises:
        MissingExtraError: ``trustme`` is not installed (extra ``testing``).
    """
    if Settings.of(request.node).tls:
        yield request.getfixturevalue("carto_proxy_recording_proxy")
        return
    from carto_proxy.testing._assertions import using

    with _proxy(request, tls=True) as proxy, using(proxy, unless_set=True):
        yield proxy


@pytest.fixture(autouse=True)
def _carto_proxy_guard(request: pytest.FixtureRequest) -> None:
    """Guard a test that has the marker, or the session's servers, but asks for no fixture."""
    if request.node.get_closest_marker(MARKER) or "carto_proxy_servers" in request.fixturenames:
        request.getfixturevalue("carto_proxy_direct_guard")


@pytest.fixture
def carto_proxy_direct_guard(
    request: pytest.FixtureRequest, carto_proxy_servers: Servers
) -> Iterator[DirectGuard]:
    """Yield the active guard: going around the proxy fails at once; nothing leaves loopback.

    It judges by ``carto_proxy_config`` once the test has it, else by the environment as
    :func:`~carto_proxy.testing.proxy_environ` sets it (:func:`~carto_proxy.testing.block_direct`).
    ``origin_hosts`` resolve to ``carto_proxy_origin`` (any port). With the marker's
    ``block_direct=False``, names are only recorded, and resolved for real.
    """
    settings = Settings.of(request.node)
    hosts: dict[str, str | tuple[str, int]] = {}
    if settings.origin_hosts:
        hosts = dict.fromkeys(settings.origin_hosts, carto_proxy_servers.origin().address)
    if not settings.block_direct:
        from carto_proxy.testing._assertions import using
        from carto_proxy.testing._direct import DirectGuard

        with DirectGuard(hosts, block=False) as guard, using(guard=guard):
            yield guard
        return
    from carto_proxy.testing._block import Blocking

    # Lenient: a machine's unreadable proxy variables are for the environment fixtures to
    # replace, or for the code under test to fail on.
    with Blocking(None, hosts=hosts, hint=_GUARD_HINT, lenient=True) as blocking:
        request.node.stash[_BLOCKING] = blocking
        try:
            yield blocking.guard
        finally:
            del request.node.stash[_BLOCKING]


@pytest.fixture
def carto_proxy_ca_files(
    request: pytest.FixtureRequest, carto_proxy_direct_guard: DirectGuard
) -> list[str]:
    """Return the CA files ``carto_proxy_config`` trusts besides the kit's: the marker's.

    Override it to trust the CAs your own fixtures make (a server in ``carto_proxy_upstreams``).
    """
    return list(Settings.of(request.node).ca_files)


@pytest.fixture
def carto_proxy_config(
    request: pytest.FixtureRequest,
    carto_proxy_recording_proxy: RecordingProxy,
    carto_proxy_ca_files: list[str],
    carto_proxy_servers: Servers,
    carto_proxy_direct_guard: DirectGuard,
) -> ProxyConfig:
    """Return a :class:`ProxyConfig` for ``carto_proxy_recording_proxy``, as CARTO writes it.

    ``HTTP_PROXY`` and ``HTTPS_PROXY`` (and ``GRPC_PROXY`` for the plain proxy), the marker's
    ``no_proxy``, and ``NODE_EXTRA_CA_CERTS`` with every CA in use at once: the TLS proxy's,
    the origin's (when the test uses ``carto_proxy_origin`` or ``origin_hosts``) and
    ``carto_proxy_ca_files``.

    Raises:
        ConfigError: a CA file is missing or holds no certificate.
    """
    from carto_proxy._tls import load_ca_file
    from carto_proxy.testing._environ import environ_config

    settings = Settings.of(request.node)
    proxy = carto_proxy_recording_proxy
    pems = [proxy.ca_pem] if proxy.tls else []
    if settings.origin_hosts or "carto_proxy_origin" in request.fixturenames:
        origin: LocalOrigin = request.getfixturevalue("carto_proxy_origin")
        pems.append(origin.ca_pem)
    pems += [load_ca_file(os.fspath(path)) for path in carto_proxy_ca_files]
    ca_file = carto_proxy_servers.ca_bundle(pems) if pems else None
    config = environ_config(proxy, no_proxy=settings.no_proxy, ca_file=ca_file)
    blocking = request.node.stash.get(_BLOCKING, None)
    if blocking is not None:
        blocking.judge_by(config)  # the code under test may be given it, not read it
    return config


@pytest.fixture
def carto_proxy_environ(carto_proxy_config: ProxyConfig) -> Iterator[ProxyConfig]:
    """Write ``carto_proxy_config`` to ``os.environ`` (every other proxy variable cleared).

    Yields the configuration ``ProxyConfig.from_env()`` reads; the environment is restored
    after the test.
    """
    from carto_proxy.testing._environ import proxy_environ

    with proxy_environ(carto_proxy_config) as config:
        yield config


@pytest.fixture
def carto_proxy_clean_environ(carto_proxy_direct_guard: DirectGuard) -> Iterator[None]:
    """Remove every proxy variable (both cases, ``ALL_PROXY``, ``NODE_*``) for the test."""
    from carto_proxy.testing._environ import proxy_environ

    with proxy_environ(None):
        yield
