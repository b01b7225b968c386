"""The one host grammar (carto_proxy._hosts): split_authority, parse_host, parse_port."""

from __future__ import annotations

import pytest

from carto_proxy._hosts import Authority, parse_host, parse_port, split_authority


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", ("example.com", None, False)),
        ("Example.COM:8080", ("Example.COM", 8080, False)),  # as written: parse_host lowercases
        ("127.0.0.1:1", ("127.0.0.1", 1, False)),
        ("[::1]", ("::1", None, True)),
        ("[::1]:443", ("::1", 443, True)),
        ("::1", ("::1", None, False)),  # a bare IPv6 address has no port
        ("2001:db8::1", ("2001:db8::1", None, False)),
        ("host:65535", ("host", 65535, False)),
        ("", ("", None, False)),  # an empty host is parse_host's to refuse
    ],
)
def test_split_authority(text: str, expected: tuple[str, int | None, bool]) -> None:
    assert split_authority(text) == Authority(*expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[::1", "unbalanced brackets"),
        ("[::1]443", "only :port may follow"),
        ("[::1]:", "port"),
        ("host:", "port"),
        ("host:0", "port"),
        ("host:65536", "port"),
        ("host:+1", "port"),
        ("host:-1", "port"),
        ("host: 1", "port"),
        ("host:１", "port"),  # a full-width digit
        ("host:0x10", "port"),
        ("host:" + "9" * 5000, "port"),
    ],
)
def test_split_authority_refuses(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        split_authority(text)


def test_parse_port_message_is_bounded() -> None:
    with pytest.raises(ValueError, match="1 to 65535") as caught:
        parse_port("1" * 5000)
    assert len(str(caught.value)) < 100
    assert parse_port("08080") == 8080


@pytest.mark.parametrize(
    ("text", "bracketed", "expected"),
    [
        ("API.Example.COM.", False, "api.example.com"),
        ("10.0.0.1", False, "10.0.0.1"),
        ("2001:DB8::1", True, "2001:db8::1"),
        ("bücher.example", False, "xn--bcher-kva.example"),
    ],
)
def test_parse_host_normalises(text: str, bracketed: bool, expected: str) -> None:
    assert parse_host(text, bracketed=bracketed)[0] == expected


@pytest.mark.parametrize(
    ("text", "bracketed"),
    [("", False), ("bad host", False), ("10.0.0.1", True), ("zz", True), ("a..b", False)],
)
def test_parse_host_refuses(text: str, bracketed: bool) -> None:
    with pytest.raises(ValueError, match="not valid"):
        parse_host(text, bracketed=bracketed)
