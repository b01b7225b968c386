"""Target parsing (DESIGN §3.3)."""

from __future__ import annotations

import pytest

from carto_proxy import Protocol, Target, TargetError, Warehouse
from carto_proxy._target import parse_target

H, S, G, T = Protocol.HTTP, Protocol.HTTPS, Protocol.GRPC, Protocol.TCP


@pytest.mark.parametrize(
    ("text", "protocol", "expected", "warehouse"),
    [
        ("http://example.com", None, (H, "example.com", 80), None),
        ("https://example.com/a?b#c", None, (S, "example.com", 443), None),
        ("HTTPS://Example.COM.:8443/x", None, (S, "example.com", 8443), None),
        ("https://user:pw@example.com", None, (S, "example.com", 443), None),
        ("wss://example.com", None, (S, "example.com", 443), None),
        ("example.com", None, (S, "example.com", 443), None),
        ("example.com:8080", None, (S, "example.com", 8080), None),
        ("example.com", H, (H, "example.com", 80), None),
        ("bigquerystorage.googleapis.com:443", G, (G, "bigquerystorage.googleapis.com", 443), None),
        ("bigquerystorage.googleapis.com", G, (G, "bigquerystorage.googleapis.com", 443), None),
        ("grpc://svc.internal", None, (G, "svc.internal", 443), None),
        ("grpcs://svc.internal:50051", None, (G, "svc.internal", 50051), None),
        ("dns:///svc.internal:50051", None, (G, "svc.internal", 50051), None),
        ("dns://8.8.8.8/svc.internal:50051", None, (G, "svc.internal", 50051), None),
        ("dns:svc.internal:50051", None, (G, "svc.internal", 50051), None),
        ("ipv4:10.0.0.1:50051", None, (G, "10.0.0.1", 50051), None),
        ("ipv6:[::1]:50051", None, (G, "::1", 50051), None),
        ("https://example.com", G, (G, "example.com", 443), None),
        (
            "postgresql://carto@db.internal:5432/carto",
            None,
            (T, "db.internal", 5432),
            Warehouse.POSTGRESQL,
        ),
        ("postgres://db.internal/carto", None, (T, "db.internal", 5432), Warehouse.POSTGRESQL),
        (
            "redshift://c.abc.eu-west-1.redshift.amazonaws.com/dev",
            None,
            (T, "c.abc.eu-west-1.redshift.amazonaws.com", 5439),
            Warehouse.REDSHIFT,
        ),
        ("db.internal:5432", T, (T, "db.internal", 5432), None),
        ("[::1]:8080", None, (S, "::1", 8080), None),
        ("http://[2001:db8::1]/", None, (H, "2001:db8::1", 80), None),
        ("2001:db8::1", None, (S, "2001:db8::1", 443), None),
        ("http://bücher.example", None, (H, "xn--bcher-kva.example", 80), None),
        ("  https://example.com  ", None, (S, "example.com", 443), None),
    ],
)
def test_parse(
    text: str,
    protocol: Protocol | None,
    expected: tuple[Protocol, str, int],
    warehouse: Warehouse | None,
) -> None:
    target, _, implied = parse_target(text, protocol)
    assert target == Target(protocol=expected[0], host=expected[1], port=expected[2])
    assert implied is warehouse


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ftp://example.com",
        "https://",
        "https://:443",
        "example.com:0",
        "example.com:65536",
        "example.com:https",
        "http://[::1",
        "db.internal",  # with protocol=TCP below: a TCP target needs a port
        "https://exa mple.com",
        "https://user:hunter2@",
        "unix:///tmp/grpc.sock",
        "https://-bad.example",
        "https://bad-.example",
        "https://a..b.example",
        "https://" + "a" * 64 + ".example",
        "https://[zz]/",
        "https://[10.0.0.1]/",
        "[db.internal]:443",
    ],
)
def test_unparsable_targets_raise_target_error(text: str) -> None:
    protocol = Protocol.TCP if text == "db.internal" else None
    with pytest.raises(TargetError) as caught:
        parse_target(text, protocol)
    assert "hunter2" not in str(caught.value)


def test_target_text_forms() -> None:
    target = Target(protocol=Protocol.HTTPS, host="2001:db8::1", port=443)
    assert target.authority == "[2001:db8::1]:443"
    assert str(target) == "https://[2001:db8::1]:443"
