"""NO_PROXY grammar and matching (DESIGN §3.4)."""

from __future__ import annotations

import pytest

from carto_proxy._hosts import as_ip
from carto_proxy._no_proxy import NoProxy


def match(no_proxy: str, host: str, port: int = 443) -> str | None:
    return NoProxy.parse(no_proxy).match(host, port, as_ip(host))


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        # Domains: bare, leading dot and '*.' all mean the domain and its subdomains.
        ("example.com", "example.com", 443, "example.com"),
        ("example.com", "a.b.example.com", 443, "example.com"),
        (".example.com", "example.com", 443, ".example.com"),
        (".example.com", "sub.example.com", 80, ".example.com"),
        ("*.example.com", "example.com", 443, "*.example.com"),
        ("*.example.com", "sub.example.com", 443, "*.example.com"),
        # Label boundaries only.
        ("example.com", "notexample.com", 443, None),
        ("ample.com", "example.com", 443, None),
        ("example.com", "example.com.evil.net", 443, None),
        # Case, whitespace, empty entries, trailing dots, IDNA.
        ("  EXAMPLE.com , ,", "example.com", 443, "EXAMPLE.com"),
        ("example.com.", "example.com", 443, "example.com."),
        ("bücher.example", "xn--bcher-kva.example", 443, "bücher.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", 443, "xn--bcher-kva.example"),
        # '*' anywhere bypasses everything.
        ("foo.com,*", "anything.net", 443, "*"),
        ("*", "10.1.2.3", 443, "*"),
        # Ports compare with the effective port.
        ("example.com:8080", "example.com", 8080, "example.com:8080"),
        ("example.com:8080", "example.com", 443, None),
        ("example.com:443", "example.com", 443, "example.com:443"),
        ("example.com:443", "sub.example.com", 443, "example.com:443"),
        # Addresses compare as addresses; CIDR matches IP literals only.
        ("10.20.30.40", "10.20.30.40", 443, "10.20.30.40"),
        ("10.20.30.40:8080", "10.20.30.40", 8080, "10.20.30.40:8080"),
        ("10.20.30.40:8080", "10.20.30.40", 443, None),
        ("10.0.0.0/8", "10.200.1.1", 443, "10.0.0.0/8"),
        ("10.0.0.0/8", "11.0.0.1", 443, None),
        ("192.168.1.7/24", "192.168.1.200", 443, "192.168.1.7/24"),
        ("2001:db8::1", "2001:db8::1", 443, "2001:db8::1"),
        ("2001:db8:0:0::1", "2001:db8::1", 443, "2001:db8:0:0::1"),
        ("[2001:db8::1]", "2001:db8::1", 443, "[2001:db8::1]"),
        ("[2001:db8::1]:443", "2001:db8::1", 443, "[2001:db8::1]:443"),
        ("[2001:db8::1]:443", "2001:db8::1", 80, None),
        ("2001:db8::/32", "2001:db8:ffff::5", 443, "2001:db8::/32"),
        ("[2001:db8::]/32", "2001:db8::5", 443, "[2001:db8::]/32"),
        ("2001:db8::/32", "2001:db9::5", 443, None),
        ("::1", "::1", 443, "::1"),
        # Names never match IP literals and IP entries never match names.
        ("localhost", "127.0.0.1", 443, None),
        ("127.0.0.1", "localhost", 443, None),
        ("10.0.0.0/8", "ten.example", 443, None),
        # No implicit localhost exemption.
        ("example.com", "localhost", 443, None),
        ("", "127.0.0.1", 443, None),
    ],
)
def test_match(no_proxy: str, host: str, port: int, expected: str | None) -> None:
    assert match(no_proxy, host, port) == expected


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("*example.com", "wildcards"),
        ("ex*mple.com", "wildcards"),
        ("http://example.com", "schemes and paths"),
        ("example.com/path", "schemes and paths"),
        ("10.0.0.0/33", "CIDR"),
        ("example.com:99999", "port"),
        ("example.com:", "port"),
        (":443", "not a valid host name"),
        ("bad host", "not a valid host name"),
        ("[::1", "unbalanced brackets"),
        ("[zz]", "IPv6 address in brackets is not valid"),
    ],
)
def test_unusable_entries_are_kept_with_a_reason(entry: str, reason: str) -> None:
    no_proxy = NoProxy.parse(f"good.example,{entry}")
    assert [ignored.entry for ignored in no_proxy.ignored] == [entry]
    assert reason in no_proxy.ignored[0].reason
    assert no_proxy.match("good.example", 443) == "good.example"  # the rest still works


def test_parse_accepts_lists_whose_items_hold_commas() -> None:
    no_proxy = NoProxy.parse(["localhost,.svc.cluster.local", ".snowflakecomputing.com"])
    assert no_proxy.entries == ("localhost", ".svc.cluster.local", ".snowflakecomputing.com")


def test_equality_and_text() -> None:
    assert NoProxy.parse("a.com, b.com") == NoProxy.parse("a.com,b.com")
    assert hash(NoProxy.parse("a.com,b.com")) == hash(NoProxy.parse(" a.com,b.com "))
    assert str(NoProxy.parse(" a.com , b.com ")) == "a.com,b.com"
    assert not NoProxy.parse(" , ")


def test_large_lists_are_indexed() -> None:
    """A 10,000-entry list probes per label, not per entry: the last entry matches at once."""
    entries = [f"host{i}.corp{i % 97}.example" for i in range(10_000)]
    no_proxy = NoProxy.parse(",".join([*entries, "10.0.0.0/8", "172.16.0.0/12"]))
    assert no_proxy.match("host9999.corp9.example", 443) is None
    assert no_proxy.match("a.host9999.corp8.example", 443) == "host9999.corp8.example"
    assert no_proxy.match("172.20.0.1", 443, as_ip("172.20.0.1")) == "172.16.0.0/12"
    assert len(no_proxy._names) == 10_000
    assert len(no_proxy._networks) == 2  # one bucket per prefix length
