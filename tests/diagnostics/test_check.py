"""check(): every documented finding, from the environment, a .env file or a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from carto_proxy import ConfigError, ProxyConfig, Severity, check
from tests.test_routing import CARTO_HTTP, CARTO_HTTPS


def codes(environ: dict[str, str]) -> set[str]:
    return {d.code for d in check(environ=environ)}


def test_carto_http_example_only_misses_the_metadata_server() -> None:
    (found,) = check(environ=CARTO_HTTP)
    assert (found.code, found.severity, found.variable) == ("CP205", Severity.WARNING, "NO_PROXY")
    assert "169.254.169.254,metadata,metadata.google.internal" in found.fix


@pytest.mark.parametrize(
    ("no_proxy", "missing"),
    [
        ("localhost", "169.254.169.254,metadata,metadata.google.internal"),
        ("169.254.169.254,metadata.google.internal", "metadata"),
        (".internal,169.254.0.0/16", "metadata"),
        ("169.254.169.254,metadata,metadata.google.internal", None),
        ("*", None),
    ],
)
def test_metadata_server_through_the_proxy_is_a_warning(no_proxy: str, missing: str | None) -> None:
    found = check(environ={**CARTO_HTTP, "NO_PROXY": no_proxy, "no_proxy": no_proxy})
    metadata = [d for d in found if d.code == "CP205"]
    if missing is None:
        assert metadata == []
    else:
        assert [d.fix for d in metadata] == [f"add {missing} to NO_PROXY and no_proxy"]


def test_metadata_server_without_an_http_proxy_is_not_a_finding() -> None:
    # The metadata server is reached over http://: only HTTP_PROXY can send it to a proxy.
    environ = {"HTTPS_PROXY": "http://p:3128", "https_proxy": "http://p:3128"}
    assert "CP205" not in {d.code for d in check(environ=environ)}


def test_carto_https_example_findings(tmp_path: Path) -> None:
    ca = tmp_path / "proxy-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(ca))
    found = check(environ={**CARTO_HTTPS, "NODE_EXTRA_CA_CERTS": str(ca)})
    assert [d.code for d in found] == ["CP108", "CP202", "CP205", "CP301", "CP304"]
    assert all(d.severity is Severity.WARNING for d in found)


@pytest.mark.parametrize(
    ("environ", "code", "severity", "variable"),
    [
        (
            {
                "http_proxy": "http://p:1",
                "HTTP_PROXY": "http://p:1",
                "https_proxy": "http://p:1",
                "HTTPS_PROXY": "http://p:1",
            },
            "CP101",
            "error",
            "GRPC_PROXY",
        ),
        (
            {"https_proxy": "https://p:1", "HTTPS_PROXY": "https://p:1"},
            "CP101",
            "error",
            "HTTP_PROXY",
        ),
        ({"HTTPS_PROXY": "http://p:1"}, "CP102", "warning", "https_proxy"),
        ({"https_proxy": "http://p:1"}, "CP102", "warning", "HTTPS_PROXY"),
        (
            {"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:1"},
            "CP103",
            "warning",
            "HTTPS_PROXY",
        ),
        ({"https_proxy": "p:1"}, "CP104", "warning", "https_proxy"),
        ({"https_proxy": "http://p"}, "CP105", "warning", "https_proxy"),
        ({"https_proxy": "http://u:pw@p:1"}, "CP106", "error", "https_proxy"),
        ({"https_proxy": "socks5://p:1"}, "CP107", "error", "https_proxy"),
        ({"grpc_proxy": "https://p:1"}, "CP108", "warning", "GRPC_PROXY"),
        ({"ALL_PROXY": "http://p:1"}, "CP109", "info", "ALL_PROXY"),
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://p:1"}, "CP110", "warning", "HTTP_PROXY"),
        ({"https_proxy": "", "HTTPS_PROXY": "http://p:1"}, "CP111", "warning", "https_proxy"),
        ({"no_proxy": "*.ok.com,bad*"}, "CP201", "warning", "no_proxy"),
        ({"NO_PROXY": "bad*"}, "CP201", "warning", "NO_PROXY"),
        ({"https_proxy": "https://p:1"}, "CP202", "warning", "NO_PROXY"),
        ({"https_proxy": "http://p:1", "no_proxy": "*"}, "CP203", "info", "no_proxy"),
        ({"no_grpc_proxy": "x.com"}, "CP204", "info", "NO_GRPC_PROXY"),
        ({"no_proxy": "10.0.0.1/8"}, "CP206", "warning", "no_proxy"),
        ({}, "CP113", "info", None),
        (
            {"https_proxy": "https://p:1", "NODE_TLS_REJECT_UNAUTHORIZED": "0"},
            "CP301",
            "warning",
            "NODE_TLS_REJECT_UNAUTHORIZED",
        ),
        (
            {"https_proxy": "http://p:1", "NODE_TLS_REJECT_UNAUTHORIZED": "0"},
            "CP302",
            "info",
            "NODE_TLS_REJECT_UNAUTHORIZED",
        ),
        ({"NODE_EXTRA_CA_CERTS": "/nonexistent/ca.pem"}, "CP305", "error", "NODE_EXTRA_CA_CERTS"),
        ({"NODE_TLS_REJECT_UNAUTHORIZED": "yes"}, "CP306", "error", "NODE_TLS_REJECT_UNAUTHORIZED"),
    ],
)
def test_each_code(environ: dict[str, str], code: str, severity: str, variable: str) -> None:
    found = [d for d in check(environ=environ) if d.code == code]
    assert found, f"{code} not reported for {environ}"
    assert found[0].severity.value == severity
    assert found[0].variable == variable
    assert found[0].message
    assert found[0].fix


def test_extra_ca_with_http_proxy_is_info(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    assert "CP303" in codes({**CARTO_HTTP, "NODE_EXTRA_CA_CERTS": str(ca)})


def test_every_refused_value_is_reported_at_once() -> None:
    found = check(
        environ={
            "https_proxy": "socks5://p:1",
            "http_proxy": "http://u:pw@p:1",
            "NODE_TLS_REJECT_UNAUTHORIZED": "x",
        }
    )
    assert {d.code for d in found if d.severity is Severity.ERROR} >= {"CP106", "CP107", "CP306"}
    assert "pw" not in " ".join(str(d) for d in found).replace("proxy", "")


def test_errors_sort_first_and_str_is_readable() -> None:
    found = check(environ={"ALL_PROXY": "http://p:1", "https_proxy": "ftp://x"})
    assert found[0].severity is Severity.ERROR
    assert str(found[0]).startswith("CP107 error https_proxy: ")


def test_check_a_config_and_an_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("HTTPS_PROXY=https://p:3129\n")
    assert "CP102" in {d.code for d in check(env_file=env)}
    config = ProxyConfig.from_env_file(env)
    assert "CP102" in {d.code for d in check(config)}  # the config keeps its sources
    with pytest.raises(ConfigError):
        check(env_file=tmp_path / "missing.env")


def test_unusable_helm_values_are_findings(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("externalProxy:\n  enabled: true\n  host: p\n  port: 1\n  type: socks5\n")
    (finding,) = check(helm_values=values)
    assert (finding.code, finding.variable) == ("CP112", "externalProxy.type")
    with pytest.raises(ConfigError):
        check(helm_values=tmp_path / "missing.yaml")


# --- issue 13 §2: check sees everything ---------------------------------------------------


@pytest.mark.parametrize("password", ["pw", "p/w", "p?w", "p#w", "p@w", "p:w/x?y#z@q"])
def test_a_password_in_the_losing_case_is_the_same_cp106(password: str) -> None:
    environ = {
        **dict.fromkeys(("http_proxy", "https_proxy", "grpc_proxy"), "http://p:1"),
        "HTTP_PROXY": f"http://u:{password}@p:1",
    }
    found = check(environ=environ)
    (error,) = [d for d in found if d.severity is Severity.ERROR]
    assert (error.code, error.variable) == ("CP106", "HTTP_PROXY")
    assert password not in " ".join(str(d) for d in found)


@pytest.mark.parametrize("password", ["p/w", "p?w", "p#w", "p@w", "a/b?c#d@e"])
def test_a_password_holding_url_delimiters_is_cp106_not_cp107(password: str) -> None:
    for value in (f"http://u:{password}@p:3128", f"u:{password}@p:3128"):
        (error,) = [
            d for d in check(environ={"https_proxy": value}) if d.code in {"CP106", "CP107"}
        ]
        assert error.code == "CP106"
        assert password not in str(error)


def test_bad_entries_are_reported_from_whichever_case_holds_them() -> None:
    environ = {"https_proxy": "http://p:1", "no_proxy": "ok.com,both*", "NO_PROXY": "both*,upper*"}
    cp201 = [(d.variable, d.entry) for d in check(environ=environ) if d.code == "CP201"]
    # 'both*' is one problem, reported once, under the list in use; 'upper*' only Go reads.
    assert cp201 == [("no_proxy", "both*"), ("NO_PROXY", "upper*")]
    upper_wins = check(environ={"https_proxy": "http://p:1", "no_proxy": " ", "NO_PROXY": "x*"})
    assert [(d.variable, d.entry) for d in upper_wins if d.code == "CP201"] == [("NO_PROXY", "x*")]


def test_no_proxy_at_all_is_said_and_is_not_an_error() -> None:
    for found in (check(environ={}), check(ProxyConfig.direct()), check(environ={"no_proxy": "x"})):
        assert [d.code for d in found if d.code == "CP113"] == ["CP113"]
        assert all(d.severity is not Severity.ERROR for d in found)
    # A proxy that is set but refused is not "no proxy": the error says what happened.
    assert "CP113" not in codes({"https_proxy": "socks5://p:1"})
    assert "CP113" not in codes({"https_proxy": "http://p:1"})


def test_cp101_says_whether_the_variable_is_unset_or_refused() -> None:
    unset = check(environ={"http_proxy": "http://p:1", "HTTP_PROXY": "http://p:1"})
    refused = check(
        environ={
            "http_proxy": "http://p:1",
            "https_proxy": "socks5://p:1",
            "grpc_proxy": "http://u:pw@p:1",
        }
    )
    messages = {d.variable: d.message for d in unset if d.code == "CP101"}
    assert "it is not set" in messages["HTTPS_PROXY"]
    assert "it is not set" in messages["GRPC_PROXY"]
    messages = {d.variable: d.message for d in refused if d.code == "CP101"}
    assert "set but refused (see CP107)" in messages["HTTPS_PROXY"]
    assert "set but refused (see CP106)" in messages["GRPC_PROXY"]


@pytest.mark.parametrize(
    ("entry", "meaning"),
    [
        ("0.0.0.0/0", "every IPv4 address"),
        ("10.1.2.3/0", "every IPv4 address"),
        ("::/0", "every IPv6 address"),
        ("[::]/0", "every IPv6 address"),
        ("192.168.0.255/8", "192.0.0.0/8 (192.0.0.0 to 192.255.255.255)"),
        ("2001:db8::1/32", "2001:db8::/32"),
    ],
)
def test_cidr_blocks_wider_than_written_are_warned(entry: str, meaning: str) -> None:
    found = [d for d in check(environ={"no_proxy": entry}) if d.code == "CP206"]
    (warning,) = found
    assert warning.severity is Severity.WARNING
    assert warning.entry == entry
    assert meaning in warning.message


@pytest.mark.parametrize("entry", ["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "10.0.0.1/32"])
def test_cidr_blocks_as_written_are_not_warned(entry: str) -> None:
    assert "CP206" not in codes({"no_proxy": entry})


@pytest.mark.parametrize("entry", ["[zz]", "[10.0.0.1]", "[db.internal]", "[::1"])
def test_bracketed_entries_that_are_not_ipv6_are_ignored_with_cp201(entry: str) -> None:
    config = ProxyConfig.from_env(environ={"https_proxy": "http://p:1", "no_proxy": entry})
    assert [d.entry for d in check(config) if d.code == "CP201"] == [entry]
    assert config.route("https://zz").action.value == "proxy"  # not taken as the name zz
