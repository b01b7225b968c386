"""Reading sources (DESIGN §3.1): precedence, CGI guard, .env files, Helm values."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from carto_proxy import ConfigError, ProxyConfig
from carto_proxy._env import read_environ


@pytest.mark.parametrize(
    ("environ", "expected", "source"),
    [
        (
            {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1"},
            "http://lower:1",
            "https_proxy",
        ),
        ({"HTTPS_PROXY": "http://upper:1"}, "http://upper:1", "HTTPS_PROXY"),
        ({"https_proxy": "http://lower:1"}, "http://lower:1", "https_proxy"),
        # Blank means unset, in either case: a blank lowercase value does not hide UPPERCASE.
        ({"https_proxy": "  ", "HTTPS_PROXY": "http://upper:1"}, "http://upper:1", "HTTPS_PROXY"),
        ({"https_proxy": "", "HTTPS_PROXY": ""}, None, None),
        ({}, None, None),
    ],
)
def test_precedence(environ: dict[str, str], expected: str | None, source: str | None) -> None:
    setting = read_environ(environ).get("HTTPS_PROXY")
    assert (setting.value, setting.source) == (expected, source)
    config = ProxyConfig.from_env(environ=environ)
    assert (str(config.https_proxy) if config.https_proxy else None) == expected


def test_cgi_guard_ignores_uppercase_http_proxy_only() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_PROXY": "http://evil:1",
        "HTTPS_PROXY": "http://upper:1",
    }
    config = ProxyConfig.from_env(environ=environ)
    assert config.http_proxy is None
    assert str(config.https_proxy) == "http://upper:1"
    assert read_environ(environ).get("HTTP_PROXY").cgi_ignored
    lower = ProxyConfig.from_env(environ={**environ, "http_proxy": "http://ok:1"})
    assert str(lower.http_proxy) == "http://ok:1"


@pytest.mark.parametrize("method", ["", "  ", "\t"])
def test_a_blank_request_method_is_not_cgi(method: str) -> None:
    # CGI always sets a method (Go's guard also wants one): blank means unset, as everywhere.
    environ = {"REQUEST_METHOD": method, "HTTP_PROXY": "http://upper:1"}
    assert str(ProxyConfig.from_env(environ=environ).http_proxy) == "http://upper:1"
    assert not read_environ(environ).cgi
    assert not read_environ(environ).get("HTTP_PROXY").cgi_ignored
    assert read_environ({**environ, "REQUEST_METHOD": "GET"}).get("HTTP_PROXY").cgi_ignored


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://from-os:3128")
    assert str(ProxyConfig.from_env().https_proxy) == "http://from-os:3128"


def test_env_file_syntax(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# CARTO Self-hosted\n"
        'HTTP_PROXY="http://my-proxy:3128"\n'
        "export HTTPS_PROXY='http://my-proxy:3128'  # inline comment\n"
        "GRPC_PROXY=http://my-proxy:3128\n"
        'NO_PROXY="localhost,mega.io"\n'
        "EMPTY\n",
        encoding="utf-8",
    )
    config = ProxyConfig.from_env_file(env)
    assert str(config.http_proxy) == str(config.https_proxy) == "http://my-proxy:3128"
    assert str(config.grpc_proxy) == "http://my-proxy:3128"
    assert config.no_proxy.entries == ("localhost", "mega.io")
    assert config.sources is not None
    assert config.sources.origin == f".env file {env}"


def test_env_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ProxyConfig.from_env_file(tmp_path / "nope.env")


HELM_HTTP = """
externalProxy:
  enabled: true
  host: my-proxy
  port: 3128
  type: http
  excludedDomains: ["localhost,.svc.cluster.local", ".snowflakecomputing.com"]
"""


def test_helm_values(tmp_path: Path) -> None:
    values = tmp_path / "customizations.yaml"
    values.write_text(HELM_HTTP, encoding="utf-8")
    config = ProxyConfig.from_helm_values(values)
    assert str(config.http_proxy) == str(config.https_proxy) == str(config.grpc_proxy)
    assert str(config.grpc_proxy) == "http://my-proxy:3128"
    assert config.no_proxy.entries == ("localhost", ".svc.cluster.local", ".snowflakecomputing.com")
    assert config.verify_proxy


def test_helm_connection_string_and_tls(tmp_path: Path) -> None:
    ca = trustme.CA().cert_pem.bytes().decode()
    indented = "\n".join("    " + line for line in ca.splitlines())
    values = tmp_path / "values.yaml"
    values.write_text(
        "externalProxy:\n  enabled: true\n  host: ignored\n  port: 1\n  type: http\n"
        "  connectionString: https://my-proxy:3129\n  sslRejectUnauthorized: false\n"
        f"trustedCACerts:\n  value: |\n{indented}\n",
        encoding="utf-8",
    )
    config = ProxyConfig.from_helm_values(values)
    assert str(config.https_proxy) == "https://my-proxy:3129"
    assert not config.verify_proxy
    assert config.extra_ca_pem is not None
    assert config.extra_ca_file is None
    assert "NODE_EXTRA_CA_CERTS" not in config.to_env()
    assert config.to_env(ca_path="/usr/src/certs/ca.pem")["NODE_EXTRA_CA_CERTS"] == (
        "/usr/src/certs/ca.pem"
    )


def test_helm_disabled_still_trusts_the_fleet_ca(tmp_path: Path) -> None:
    ca = trustme.CA().cert_pem.bytes().decode()
    indented = "\n".join("    " + line for line in ca.splitlines())
    values = tmp_path / "values.yaml"
    values.write_text(
        f"externalProxy:\n  enabled: false\n  sslCA: nope\ntrustedCACerts:\n  value: |\n"
        f"{indented}\n",
        encoding="utf-8",
    )
    config = ProxyConfig.from_helm_values(values)
    assert not config.has_proxy
    assert config.extra_ca_pem is not None  # sslCA ('nope') is ignored while disabled


@pytest.mark.parametrize(
    ("yaml_text", "variable"),
    [
        (
            "externalProxy:\n  enabled: true\n  host: p\n  port: 1\n  type: socks5\n",
            "externalProxy.type",
        ),
        ("externalProxy:\n  enabled: true\n  port: 1\n  type: http\n", "externalProxy.host"),
        ("externalProxy:\n  enabled: maybe\n", "externalProxy.enabled"),
        (
            "externalProxy:\n  enabled: true\n  connectionString: http://p:1\n"
            "  excludedDomains: a.com\n",
            "externalProxy.excludedDomains",
        ),
        ("externalProxy: [1, 2]\n", "externalProxy"),
        ("externalProxy: {enabled: true\n", "Helm values"),
    ],
)
def test_helm_errors_name_the_key(tmp_path: Path, yaml_text: str, variable: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_helm_values(values)
    assert caught.value.variable == variable


def test_env_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    # Found through `carto-proxy check --env-file /bin/ls`: dotenv's UnicodeDecodeError escaped.
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"HTTPS_PROXY=http://p:3128\n\xd0\x00\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env_file(binary)
    assert caught.value.variable == ".env file"
    assert "UTF-8" in caught.value.problem
