"""No kit fixture, marker or recipe lets a lookup or a connection leave loopback.

Broken connectors (httpx with and without ``trust_env``, ``requests.get``, ``urlopen``) ask for
proxied, direct, unmapped names and remote addresses through every fixture, the marker and the
"Without pytest" recipe, in a pytest session of their own (a subprocess: its watch stays in
the process). The watch (``conftest.py`` below) sees what the kit lets through: a name that
would reach a real resolver is probed numerically instead (an audit hook that refuses it still
does), and an audit hook added after the kit's sees every connection the kit allowed. Each
escape is recorded and refused; the suite also runs in a loopback-only network namespace,
where one would fail loudly.
"""

from __future__ import annotations

import json

import pytest

from tests.testing.user_project import STRICT_INI

pytest.importorskip("httpx")
pytest.importorskip("requests")

pytest_plugins = ["pytester"]

WATCH = '''
import _socket
import ipaddress
import json
import socket
import sys

from carto_proxy.testing import block_direct

ESCAPES = []
LOCAL = {"localhost", "localhost.localdomain", "ip6-localhost"}

with block_direct():  # the kit's audit hooks first: the watch sees only what they let through
    pass


def _address(host):
    name = (host.decode() if isinstance(host, bytes) else str(host)).strip("[]").lower()
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


def _stays(host):
    """Whether a connection to *host* stays on this machine."""
    address = _address(host)
    return address.is_loopback or address.is_unspecified if address else host in LOCAL


_getaddrinfo = _socket.getaddrinfo


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host is not None and _address(host) is None and host not in LOCAL
    if name and not flags & socket.AI_NUMERICHOST:
        try:  # numeric only: the audit hooks judge it, no resolver is asked
            _getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        ESCAPES.append(["resolve", str(host)])
        raise OSError(f"ESCAPED: a real resolver would have been asked for {host}")
    return _getaddrinfo(host, port, family, type, proto, flags)


def gethostbyname(host):
    return getaddrinfo(host, None, socket.AF_INET)[0][4][0]


_socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname


def watch(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[-1]
        inet = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        if inet and isinstance(address, tuple) and not _stays(address[0]):
            ESCAPES.append(["connect", str(address[0])])
            raise OSError(f"ESCAPED: connection to {address[0]}")


sys.addaudithook(watch)


def pytest_sessionfinish(session):
    with open("escapes.json", "w") as file:
        json.dump(ESCAPES, file)
'''

TESTS = '''
import urllib.request

import httpx
import pytest
import requests

from carto_proxy.testing import (
    LocalOrigin, RecordingProxy, block_direct, proxy_environ
)

def with_httpx(url, **options):
    with httpx.Client(timeout=5, **options) as client:
        client.get(url)


def with_urlopen(url):
    with urllib.request.urlopen(url, timeout=5):
        pass


CONNECTORS = {
    "trust_env_false": lambda url: with_httpx(url, trust_env=False),
    "httpx": with_httpx,
    "requests": lambda url: requests.get(url, timeout=5).close(),
    "urlopen": with_urlopen,
}
MAPPED = "https://geocoder.example.com/"  # origin_hosts: the local origin answers for it
UNMAPPED = "https://tiles.example.com/"
INTERNAL = "https://db.internal/"  # NO_PROXY, no server mapped
REMOTE_V4 = "http://192.0.2.10/"  # NO_PROXY (a CIDR): direct, and remote
REMOTE_V6 = "https://[2001:db8::1]/"
TARGETS = (MAPPED, UNMAPPED, INTERNAL, REMOTE_V4, REMOTE_V6)
KIT = pytest.mark.carto_proxy(
    origin_hosts=["geocoder.example.com"], no_proxy=[".internal", "192.0.2.0/24"]
)
each = pytest.mark.parametrize("connector", CONNECTORS)


@pytest.fixture(autouse=True)
def fresh_urlopen():
    # urlopen keeps the proxies of its first call (test_naive_connectors.py shows it).
    urllib.request.install_opener(None)


def outcomes(connector):
    """What each target came to: the error's text, or 'answered'."""
    found = {}
    for url in TARGETS:
        try:
            CONNECTORS[connector](url)
            found[url] = "answered"
        except Exception as error:
            found[url] = repr(error)
    assert not any("ESCAPED" in text for text in found.values()), found
    return found


def went_direct(found, *urls):
    for url in urls:
        assert "went direct" in found[url], (url, found[url])


def kept_local(found):
    assert "no local server is mapped" in found[UNMAPPED], found[UNMAPPED]
    assert "no local server is mapped" in found[INTERNAL], found[INTERNAL]
    assert "beyond loopback" in found[REMOTE_V4], found[REMOTE_V4]


@KIT
@each
def test_environ(carto_proxy_environ, connector):
    found = outcomes(connector)
    if connector == "trust_env_false":
        went_direct(found, MAPPED, UNMAPPED)
        assert "no local server is mapped" in found[INTERNAL]
        assert "beyond loopback" in found[REMOTE_V4]


@KIT
@pytest.mark.carto_proxy(tls=True)
@each
def test_tls_environ(carto_proxy_environ, connector):
    found = outcomes(connector)
    if connector == "trust_env_false":
        went_direct(found, MAPPED, UNMAPPED)


@KIT
@each
def test_config(carto_proxy_config, connector):
    # Not in the environment: every connector here ignores it, and goes direct.
    went_direct(outcomes(connector), MAPPED, UNMAPPED)


@KIT
@each
def test_clean_environ(carto_proxy_clean_environ, connector):
    kept_local(outcomes(connector))


@pytest.mark.parametrize(
    "fixture",
    [
        "carto_proxy_origin",
        "carto_proxy_recording_proxy",
        "carto_proxy_tls_proxy",
        "carto_proxy_direct_guard",
        "carto_proxy_upstreams",
        "carto_proxy_ca_files",
    ],
)
@each
def test_any_other_fixture(request, fixture, connector):
    request.getfixturevalue(fixture)  # asked for late, as a user's own fixture may
    kept_local(outcomes(connector))


@each
def test_the_sessions_servers(carto_proxy_servers, connector):
    kept_local(outcomes(connector))


@KIT
@each
def test_the_marker_alone(connector):
    kept_local(outcomes(connector))


@each
def test_the_marker_and_a_proxy_environ_inside(carto_proxy_clean_environ, connector):
    with RecordingProxy() as proxy, proxy_environ(proxy, no_proxy=".internal,192.0.2.0/24"):
        found = outcomes(connector)
    if connector == "trust_env_false":
        went_direct(found, MAPPED, UNMAPPED)


@each
@pytest.mark.parametrize("tls", [False, True])
def test_without_pytest(connector, tls):
    with LocalOrigin() as origin, RecordingProxy(
        tls=tls, upstreams=origin.upstreams("geocoder.example.com")
    ) as proxy:
        with proxy_environ(
            proxy, no_proxy=".internal,192.0.2.0/24", ca_file=origin.ca_file
        ) as config, block_direct(config, hosts={"geocoder.example.com": origin.address}):
            found = outcomes(connector)
    if connector == "trust_env_false":
        went_direct(found, MAPPED, UNMAPPED)


@each
def test_block_direct_following_the_environment(connector):
    with block_direct():
        kept_local(outcomes(connector))


@pytest.mark.carto_proxy(block_direct=False)
def test_opting_out_lets_it_through(carto_proxy_clean_environ):
    found = outcomes_unchecked()
    assert "ESCAPED" in found[UNMAPPED] and "ESCAPED" in found[REMOTE_V4]


def outcomes_unchecked():
    found = {}
    for url in (UNMAPPED, REMOTE_V4):
        try:
            CONNECTORS["trust_env_false"](url)
        except Exception as error:
            found[url] = repr(error)
    return found
'''


def test_no_lookup_or_connection_leaves_loopback(pytester: pytest.Pytester) -> None:
    pytester.makeini(STRICT_INI)
    pytester.makeconftest(WATCH)
    pytester.makepyfile(test_broken=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:logging", "-q", timeout=120)
    result.assert_outcomes(passed=65)
    escapes = json.loads((pytester.path / "escapes.json").read_text(encoding="utf-8"))
    # The opt-out's two, and nothing else: the watch works, and every kit path held.
    assert escapes == [["resolve", "tiles.example.com"], ["connect", "192.0.2.10"]]
