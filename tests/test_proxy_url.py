"""ProxyURL parsing (DESIGN §3.2)."""

from __future__ import annotations

import pytest

from carto_proxy import ConfigError, ProxyURL
from carto_proxy._proxy_url import parse_proxy, redact


@pytest.mark.parametrize(
    ("value", "expected", "scheme_assumed", "port_assumed"),
    [
        ("http://my-proxy:3128", "http://my-proxy:3128", False, False),
        ("https://my-proxy:3129", "https://my-proxy:3129", False, False),
        ("  http://my-proxy:3128  ", "http://my-proxy:3128", False, False),
        ("http://my-proxy:3128/", "http://my-proxy:3128", False, False),
        ("HTTP://My-Proxy.Example.:3128", "http://my-proxy.example:3128", False, False),
        ("my-proxy:3128", "http://my-proxy:3128", True, False),
        ("http://my-proxy", "http://my-proxy:80", False, True),
        ("https://my-proxy", "https://my-proxy:443", False, True),
        ("my-proxy", "http://my-proxy:80", True, True),
        ("http://[::1]:3128", "http://[::1]:3128", False, False),
        ("http://[0:0::1]:3128", "http://[::1]:3128", False, False),
        ("http://10.0.0.1:3128", "http://10.0.0.1:3128", False, False),
        ("http://bücher.example:3128", "http://xn--bcher-kva.example:3128", False, False),
    ],
)
def test_parse_normalises(
    value: str, expected: str, scheme_assumed: bool, port_assumed: bool
) -> None:
    parsed = parse_proxy(value, variable="HTTP_PROXY")
    assert str(parsed.url) == expected
    assert parsed.scheme_assumed is scheme_assumed
    assert parsed.port_assumed is port_assumed


@pytest.mark.parametrize(
    ("value", "problem", "code"),
    [
        ("socks5://proxy:1080", "socks5:// scheme is not supported", "CP107"),
        ("ftp://proxy:21", "ftp:// scheme is not supported", "CP107"),
        ("http://user:s3cret@proxy:3128", "password authentication is not supported", "CP106"),
        ("http://user@proxy:3128", "password authentication is not supported", "CP106"),
        ("http://proxy:0", "not a number from 1 to 65535", "CP107"),
        ("http://proxy:65536", "not a number from 1 to 65535", "CP107"),
        ("http://proxy:http", "not a number from 1 to 65535", "CP107"),
        ("http://proxy:" + "9" * 5000, "not a number from 1 to 65535", "CP107"),
        ("http://proxy:3128/path", "no path", "CP107"),
        ("http://proxy:3128?x=1", "no path", "CP107"),
        ("http://:3128", "host name is missing", "CP107"),
        ("http://::1:3128", "must be written in brackets", "CP107"),
        ("http://[::1:3128", "IPv6 address in brackets is not valid", "CP107"),
        ("http://[10.0.0.1]:3128", "IPv6 address in brackets is not valid", "CP107"),
        ("http://bad host:3128", "host name is missing or not valid", "CP107"),
    ],
)
def test_parse_refuses(value: str, problem: str, code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_proxy(value, variable="HTTPS_PROXY")
    error = caught.value
    assert problem in str(error)
    assert error.variable == "HTTPS_PROXY"
    assert error.code == code
    assert "s3cret" not in str(error)
    assert error.fix


def test_proxy_url_parts() -> None:
    url = ProxyURL(scheme="https", host="::1", port=3129)
    assert url.authority == "[::1]:3129"
    assert url.is_tls
    assert str(url) == "https://[::1]:3129"
    assert "s3cret" not in repr(url)


@pytest.mark.parametrize(
    ("value", "keep_user", "expected"),
    [
        ("http://bob:s3cret@proxy:3128", True, "http://bob:***@proxy:3128"),
        ("http://bob:s3cret@proxy:3128", False, "http://***@proxy:3128"),
        ("bob:s3:cr@et@proxy:3128", True, "bob:***@proxy:3128"),
        ("http://bob@proxy", True, "http://bob@proxy"),
        ("http://proxy:3128", True, "http://proxy:3128"),
    ],
)
def test_redact(value: str, keep_user: bool, expected: str) -> None:
    assert redact(value, keep_user=keep_user) == expected
