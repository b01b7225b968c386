"""Tests for the host:port grammar of carto_proxy._hosts: split_authority and parse_port."""

from __future__ import annotations

import pytest

from carto_proxy._hosts import parse_port, split_authority


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM:8080", ("Example.COM", 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]", ("::1", None)),
        ("[::1]:443", ("::1", 443)),
        ("::1", ("::1", None)),  # a bare IPv6 address has no port
        ("2001:db8::1", ("2001:db8::1", None)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_split_authority(text: str, expected: tuple[str, int | None]) -> None:
    assert split_authority(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":443",
        "[]:443",
        "[::1",
        "[::1]443",
        "[::1]:",
        "host:",
        "host:0",
        "host:65536",
        "host:+1",
        "host:-1",
        "host: 1",
        "host:１",
        "host:0x10",
        "host:" + "9" * 5000,
    ],
)
def test_split_authority_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"port|host|authority"):
        split_authority(text)


def test_parse_port_message_is_bounded() -> None:
    with pytest.raises(ValueError, match="1 to 65535") as caught:
        parse_port("1" * 5000)
    assert len(str(caught.value)) < 100
    assert parse_port("08080") == 8080
