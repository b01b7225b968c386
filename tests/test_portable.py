"""portable(): NO_PROXY rewritten on the portability table, so that every tool reads it alike.

Three things must hold for any list: carto_proxy decides every target as before; what the
lint still reports is exactly what the table has no rewrite for; and the real decision
functions of Python urllib and requests (installed here) agree with carto_proxy on every
target, unless a finding left says they do not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import requests.utils
from hypothesis import given, settings
from hypothesis import strategies as st

from carto_proxy import ProxyConfig
from carto_proxy._diagnostics import entry_rules, lint
from carto_proxy._portable import Portable, portable

PROXY = "http://p:3128"
NAME = re.compile(r"[a-z0-9-]*[a-z-][a-z0-9-]*(\.[a-z0-9-]+)*")  # no all-digit label first


def rewrite(no_proxy: str, **extra: str) -> Portable:
    return portable(ProxyConfig(http_proxy=PROXY, https_proxy=PROXY, no_proxy=no_proxy, **extra))


# (NO_PROXY, what --portable writes, codes still reported)
CASES = [
    ("*.corp.example", "corp.example,.corp.example", []),
    (".corp.example", "corp.example,.corp.example", []),
    ("corp.example", "corp.example,.corp.example", []),
    ("corp.example,.corp.example", "corp.example,.corp.example", []),
    ("localhost", "localhost", []),
    ("[::1]", "::1", ["CP507"]),
    ("[2001:db8::1]:8443", "[2001:db8::1]:8443", ["CP504", "CP508"]),
    ("example.com.", "example.com,.example.com", []),
    ("*.bücher.example", "xn--bcher-kva.example,.xn--bcher-kva.example", []),
    ("10.0.0.4/30", "10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7", []),
    ("10.0.0.7/32", "10.0.0.7", []),
    ("10.0.0.0/8", "10.0.0.0/8", ["CP505"]),
    ("2001:db8::/127", "2001:db8::,2001:db8::1", ["CP507", "CP507"]),
    ("*.x.example:8443", "x.example:8443,.x.example:8443", ["CP504", "CP504"]),
    ("a.example b.example,c.example", "c.example,.c.example", []),
    ("http://x.example/,exa*mple.com,db.corp", "db.corp,.db.corp", []),
    ("foo.example,*,bar.example", "*", ["CP509"]),
    ("*", "*", ["CP509"]),
]


@pytest.mark.parametrize(("no_proxy", "written", "left"), CASES)
def test_each_rewrite_of_the_table(no_proxy: str, written: str, left: list[str]) -> None:
    result = rewrite(no_proxy)
    assert str(result.config.no_proxy) == written
    assert sorted(f.code for f in result.not_portable) == left


def test_rewrites_say_what_became_of_each_entry() -> None:
    result = rewrite("*.corp.example,a b,x.example.,x.example,foo.example")
    by_entry = {r.entry: r for r in result.rewrites}
    assert by_entry["*.corp.example"].now == ("corp.example", ".corp.example")
    assert by_entry["*.corp.example"].codes == ("CP501",)
    assert "curl" in by_entry["*.corp.example"].tools
    assert by_entry["a b"].now == ()
    assert by_entry["a b"].codes == ("CP201",)
    assert by_entry["x.example."].now == ("x.example",)  # merged with the entry beside it
    assert [r.entry for r in result.rewrites] == [
        "*.corp.example",
        "a b",
        "x.example.",
        "x.example",
        "foo.example",
    ]


def test_no_grpc_proxy_is_rewritten_for_grpc_only() -> None:
    result = rewrite("db.corp", no_grpc_proxy="*.grpc.example,db.corp")
    # gRPC reads "db.corp" as carto_proxy does: only proxy-from-env needed ".db.corp".
    assert str(result.config.no_grpc_proxy) == "grpc.example,.grpc.example,db.corp"
    assert str(result.config.no_proxy) == "db.corp,.db.corp"


def test_a_no_grpc_proxy_of_ignored_entries_only_is_kept() -> None:
    # Dropping them would leave it blank, which means unset: gRPC would read NO_PROXY.
    result = rewrite("db.corp", no_grpc_proxy="http://x/")
    assert str(result.config.no_grpc_proxy) == "http://x/"


def test_carto_s_examples_become_portable_but_for_the_https_proxy() -> None:
    http = rewrite("localhost,mega.io,dropbox.com,filestack.com")
    assert str(http.config.no_proxy) == (
        "localhost,mega.io,.mega.io,dropbox.com,.dropbox.com,filestack.com,.filestack.com"
    )
    assert http.not_portable == ()
    https = portable(ProxyConfig(https_proxy="https://p:3129", no_proxy="mega.io"))
    assert [f.code for f in https.not_portable] == ["CP525"]  # urllib and https:// proxies


# --- properties over generated lists --------------------------------------------------------

LABELS = ["corp", "db", "svc", "a1", "bücher", "xn--bcher-kva"]
TOPS = ["example", "internal", "local", "localhost"]
FIXED = [
    "10.1.2.3",
    "10.1.2.3:8443",
    "2001:db8::1",
    "[2001:db8::1]",
    "[2001:db8::1]:8443",
    "::1",
    "[::1]",
    "10.0.0.4/30",
    "10.0.0.7/32",
    "10.0.0.0/8",
    "192.168.0.255/24",
    "2001:db8::/126",
    "2001:db8::/32",
    "*",
    "a.example b.example",
    "http://x.example",
    "exa*mple.com",
    "x.example/path",
    "[zz]",
    "alice:pw@db.corp",
]


@st.composite
def name_entries(draw: st.DrawFn) -> str:
    labels = draw(st.lists(st.sampled_from(LABELS), max_size=2))
    name = ".".join([*labels, draw(st.sampled_from(TOPS))])
    prefix = draw(st.sampled_from(["", "", ".", "*."]))
    dot = draw(st.sampled_from(["", "", "", "."]))
    port = draw(st.sampled_from(["", "", "", ":443", ":8443"]))
    entry = f"{prefix}{name}{dot}{port}"
    return entry.upper() if draw(st.booleans()) and entry.isascii() and not port else entry


entries = st.one_of(name_entries(), st.sampled_from(FIXED))
lists = st.lists(entries, min_size=1, max_size=6).map(",".join)


def targets(config: ProxyConfig) -> Iterator[str]:
    """URLs that each entry of *config* (before or after the rewrite) is about, and others."""
    hosts = {"other.example", "10.9.9.9", "[2001:db8::9]"}
    for entry in config.no_proxy.entries:
        host = entry.split(":")[0] if entry.count(":") == 1 else entry
        host = host.lstrip("*.").rstrip(".").lower()
        if NAME.fullmatch(host):
            hosts |= {host, f"sub.{host}"}
    hosts |= {"10.1.2.3", "10.0.0.5", "10.0.0.7", "10.200.0.1", "192.168.0.9"}
    hosts |= {"[2001:db8::1]", "[2001:db8::2]", "[::1]"}
    hosts |= {"xn--bcher-kva.example", "db.xn--bcher-kva.example", "corp.example"}
    for host in sorted(hosts):
        yield f"https://{host}/"
        yield f"https://{host}:8443/"
        yield f"https://{host}:443/"


def decisions(config: ProxyConfig, urls: list[str]) -> list[tuple[str, str]]:
    return [(r.action.value, r.rule.value) for r in map(config.route, urls)]


@settings(max_examples=200, deadline=None)
@given(lists)
def test_carto_proxy_decides_every_target_as_before(no_proxy: str) -> None:
    before = ProxyConfig(http_proxy=PROXY, https_proxy=PROXY, no_proxy=no_proxy)
    after = portable(before).config
    urls = sorted(set(targets(before)) | set(targets(after)))
    assert decisions(after, urls) == decisions(before, urls)


@settings(max_examples=200, deadline=None)
@given(lists)
def test_what_is_left_is_what_the_table_has_no_rewrite_for(no_proxy: str) -> None:
    result = rewrite(no_proxy)
    entries = result.config.no_proxy.entries
    listed = frozenset(e.lower() for e in entries)
    for entry in entries:
        for rule in entry_rules(entry, listed):
            assert rule.rewrite is None, (no_proxy, entry, rule.code)
    # ...and the findings portable() lists are the lint's on what it wrote.
    assert list(result.not_portable) == lint(ProxyConfig.from_env(result.config.to_env()))
    assert portable(result.config).config == result.config  # a fixed point


def urllib_bypasses(url: str, no_proxy: str) -> bool:
    netloc = urllib.request.Request(url).host  # what ProxyHandler hands proxy_bypass()
    return bool(urllib.request.proxy_bypass_environment(netloc, {"no": no_proxy}))


def requests_bypasses(url: str, no_proxy: str) -> bool:
    return bool(requests.utils.should_bypass_proxies(url, no_proxy=no_proxy))


@settings(max_examples=150, deadline=None)
@given(lists)
def test_urllib_and_requests_agree_unless_a_finding_says_they_do_not(no_proxy: str) -> None:
    """The real decision functions, on the value --portable writes."""
    result = rewrite(no_proxy)
    written = str(result.config.no_proxy)
    named = {tool for finding in result.not_portable for tool in finding.tools}
    urls = list(targets(result.config))
    expected = [route.rule.value == "no_proxy" for route in map(result.config.route, urls)]
    for tool, bypasses in (("urllib", urllib_bypasses), ("requests", requests_bypasses)):
        if tool in named:
            continue
        got = [bypasses(url, written) for url in urls]
        wrong = [url for url, a, b in zip(urls, got, expected, strict=True) if a != b]
        assert wrong == [], (tool, no_proxy, written)


# --- curl, for real, on loopback -------------------------------------------------------------

CURL_LISTS = [
    "*.corp.example",
    ".corp.example",
    "corp.example.",
    "*.bücher.example",
    "[::1],127.0.0.1",
    "db.corp,*",
    "a.example b.example,corp.example:8443",
]
CURL_HOSTS = ["corp.example", "sub.corp.example", "xn--bcher-kva.example", "a.example", "db.corp"]


def curl_goes_direct(url: str, host: str | None, no_proxy: str) -> bool:
    """Whether curl connects to the origin rather than to the proxy (127.0.0.1:1, closed).

    Names resolve to 127.0.0.1 with --resolve, so curl does no lookup; nothing listens on
    the ports tried, so each attempt ends at once with "connection refused".
    """
    resolve = [] if host is None else ["--resolve", f"{host}:443:127.0.0.1"]
    resolve += [] if host is None else ["--resolve", f"{host}:8443:127.0.0.1"]
    result = subprocess.run(
        ["curl", "-sv", "--max-time", "5", *resolve, url],
        env={"https_proxy": "http://127.0.0.1:1", "no_proxy": no_proxy, "PATH": os.defpath},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Trying " in result.stderr, result.stderr
    return "Trying 127.0.0.1:1..." not in result.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("no_proxy", CURL_LISTS)
def test_curl_agrees_on_what_portable_writes_unless_a_finding_says_not(no_proxy: str) -> None:
    result = rewrite(no_proxy)
    written = str(result.config.no_proxy)
    urls = [(f"https://{h}{p}/", h) for h in CURL_HOSTS for p in ("", ":8443")]
    urls += [(f"https://{ip}{p}/", None) for ip in ("127.0.0.1", "[::1]") for p in ("", ":8443")]
    wrong = [
        url
        for url, host in urls
        if curl_goes_direct(url, host, written)
        != (result.config.route(url).rule.value == "no_proxy")
    ]
    if any("curl" in finding.tools for finding in result.not_portable):
        assert wrong, f"--portable says curl reads {written!r} differently, but it agrees"
    else:
        assert wrong == [], written


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_disagrees_on_the_list_as_written() -> None:
    """The test can fail: curl does not read '*.corp.example' as carto_proxy does."""
    url = "https://sub.corp.example/"
    assert ProxyConfig(https_proxy=PROXY, no_proxy="*.corp.example").route(url).action.value == (
        "direct"
    )
    assert not curl_goes_direct(url, "sub.corp.example", "*.corp.example")


def test_rewrites_name_only_the_tools_that_read_the_list() -> None:
    result = rewrite("*.a.example", no_grpc_proxy="*.b.example")
    by_entry = {r.entry: r for r in result.rewrites}
    assert "grpc" not in by_entry["*.a.example"].tools  # gRPC reads NO_GRPC_PROXY instead
    assert by_entry["*.b.example"].tools == ("grpc",)
    assert by_entry["*.b.example"].why.startswith("'*.b.example' is ignored by gRPC:")
