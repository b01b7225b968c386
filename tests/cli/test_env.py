"""carto-proxy env: CARTO's .env block and Helm values, written so they read back the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carto_proxy import ProxyConfig
from tests.cli.helpers import (
    HTTP_ENV,
    HTTPS_ENV,
    Result,
    both,
    run_subprocess,
)
from tests.support.pki import PKI


def test_env_writes_carto_s_http_block_exactly(cli: Any) -> None:
    no_proxy = "localhost,mega.io,dropbox.com,filestack.com"
    result = cli("env", "--proxy", "http://my-proxy:3128", "--no-proxy", no_proxy)
    assert result.code == 0
    # CARTO's block, plus the verification flag to_env() writes whenever a proxy is set.
    assert result.out == HTTP_ENV.read_text() + "NODE_TLS_REJECT_UNAUTHORIZED=1\n"


def test_env_writes_carto_s_https_block_exactly(cli: Any) -> None:
    result = cli(
        "env",
        "--proxy",
        "https://my-proxy:3129",
        "--no-proxy",
        "mega.io,dropbox.com",
        "--no-proxy",
        "filestack.com",
        "--ca",
        "/opt/carto/certs/proxy-ca.crt",
        "--no-verify-proxy",
    )
    assert result.code == 0
    assert result.out == HTTPS_ENV.read_text()
    assert "does not exist here" in result.err


def test_env_warehouses_add_the_exclusions_they_need(cli: Any) -> None:
    https = cli("env", "--json", "--proxy", "https://p:3129", "--warehouses", "snowflake,bigquery")
    variables = https.json()
    assert variables["NO_PROXY"] == variables["no_proxy"] == ".snowflakecomputing.com"
    assert "GRPC_PROXY" not in variables  # CARTO's https block has no GRPC_PROXY
    assert variables["NODE_TLS_REJECT_UNAUTHORIZED"] == "1"
    assert "bigquerystorage.googleapis.com:443" in https.err
    http = cli("env", "--json", "--proxy", "http://p:3128", "--warehouses", "snowflake").json()
    assert "NO_PROXY" not in http  # Snowflake works through an http proxy
    assert http["GRPC_PROXY"] == http["grpc_proxy"] == "http://p:3128"
    assert http["NODE_TLS_REJECT_UNAUTHORIZED"] == "1"  # the same rule as to_env()


def test_env_unknown_warehouse_is_a_usage_error(cli: Any) -> None:
    result = cli("env", "--proxy", "http://p:3128", "--warehouses", "oracle")
    assert result.code == 2
    assert "oracle" in result.err


def test_env_refuses_credentials_without_printing_them(cli: Any) -> None:
    result = cli("env", "--proxy", "http://carol:pa55word@p:3128")
    assert result.code == 2
    assert "pa55word" not in result.out + result.err
    assert "not supported" in result.err


def test_env_proxy_and_source_exclude_each_other(cli: Any) -> None:
    assert cli("env", "--proxy", "http://p:3128", "--env-file", str(HTTP_ENV)).code == 2


def test_env_without_proxy_anywhere_is_a_usage_error(cli: Any) -> None:
    assert cli("env").code == 2


def test_env_schemeless_proxy_is_normalised_with_a_note(cli: Any) -> None:
    result = cli("env", "--json", "--proxy", "my-proxy:3128")
    assert result.json()["HTTP_PROXY"] == "http://my-proxy:3128"
    assert "read as http://my-proxy:3128" in result.err


ROUND_TRIPS = [
    ["--proxy", "http://my-proxy:3128", "--no-proxy", "localhost,.svc.cluster.local"],
    ["--proxy", "https://my-proxy:3129", "--warehouses", "snowflake", "--no-verify-proxy"],
    ["--proxy", "https://[::1]:3129", "--no-proxy", "10.0.0.0/8,[2001:db8::1]:8443"],
    ["--proxy", "http://proxy.corp:8080", "--no-proxy", 'odd"entry\\,x.example'],
]


@pytest.mark.parametrize("argv", ROUND_TRIPS)
@pytest.mark.parametrize("with_ca", [False, True])
def test_env_output_reads_back_as_the_same_config(
    cli: Any, tmp_path: Path, pki: PKI, argv: list[str], with_ca: bool
) -> None:
    ca = ["--ca", str(pki.proxy_ca_path)] if with_ca else []
    written = cli("env", *argv, *ca)
    assert written.code == 0, written.err
    env_file = tmp_path / ".env"
    env_file.write_text(written.out)
    expected = ProxyConfig.from_env(environ=written_environ(cli("env", "--json", *argv, *ca)))
    assert ProxyConfig.from_env_file(env_file) == expected
    # ...and the .env converts to Helm values the chart reads as the same routing and trust.
    helm = cli("env", "--format", "helm", "--env-file", str(env_file))
    assert helm.code == 0, helm.err
    values = tmp_path / "values.yaml"
    values.write_text(helm.out)
    from_helm = ProxyConfig.from_helm_values(values)
    proxy = expected.https_proxy
    assert from_helm.http_proxy == from_helm.https_proxy == from_helm.grpc_proxy == proxy
    assert from_helm.no_proxy.entries[: len(expected.no_proxy.entries)] == (
        expected.no_proxy.entries
    )
    assert ".svc.cluster.local" in from_helm.no_proxy.entries
    assert from_helm.verify_proxy == expected.verify_proxy
    assert from_helm.extra_ca_pem == expected.extra_ca_pem


def written_environ(result: Result) -> dict[str, str]:
    assert result.code == 0, result.err
    variables: dict[str, str] = result.json()
    return variables


def test_env_helm_format_from_flags(cli: Any, pki: PKI) -> None:
    result = cli(
        "env",
        "--json",
        "--format",
        "helm",
        "--proxy",
        "https://my-proxy:3129",
        "--no-proxy",
        "localhost,.svc.cluster.local",
        "--ca",
        str(pki.proxy_ca_path),
    )
    assert result.code == 0
    values = result.json()
    assert values["externalProxy"] == {
        "enabled": True,
        "type": "https",
        "host": "my-proxy",
        "port": 3129,
        "excludedDomains": ["localhost", ".svc.cluster.local"],
        "sslRejectUnauthorized": True,
    }
    assert values["trustedCACerts"]["value"] == pki.proxy_ca_path.read_text()
    assert "added" not in result.err  # .svc.cluster.local was already excluded


def test_env_helm_format_needs_a_real_ca_file(cli: Any) -> None:
    result = cli("env", "--format", "helm", "--proxy", "https://p:3129", "--ca", "/nope.crt")
    assert result.code == 2


def test_env_helm_refuses_what_the_chart_cannot_express(cli: Any) -> None:
    environ = both(http_proxy="http://a:3128", https_proxy="http://b:3128")
    result = cli("env", "--format", "helm", environ=environ)
    assert result.code == 2
    assert "one proxy" in result.err


# --- a CA file that lives where CARTO runs (issue 13 §1) --------------------------------------

CARTO_CA = "/opt/carto/certs/proxy-ca.crt"


def test_env_converts_carto_s_https_example_without_its_ca_file(cli: Any) -> None:
    assert not Path(CARTO_CA).exists()
    result = cli("env", "--env-file", str(HTTPS_ENV))
    assert result.code == 0, result.err
    assert result.out == HTTPS_ENV.read_text()  # CARTO's block, as written
    assert f"NODE_EXTRA_CA_CERTS {CARTO_CA} does not exist here" in result.err


def test_env_reads_and_checks_the_ca_file_when_it_is_here(
    cli: Any, tmp_path: Path, pki: PKI
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"HTTPS_PROXY=https://p:3129\nNODE_EXTRA_CA_CERTS={pki.proxy_ca_path}\n")
    helm = cli("env", "--env-file", str(env_file), "--format", "helm", "--json")
    assert helm.code == 0, helm.err
    assert "BEGIN CERTIFICATE" in helm.json()["trustedCACerts"]["value"]
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    env_file.write_text(f"HTTPS_PROXY=https://p:3129\nNODE_EXTRA_CA_CERTS={not_pem}\n")
    refused = cli("env", "--env-file", str(env_file))
    assert refused.code == 1  # the source's own value is refused: a finding, not usage
    assert "NODE_EXTRA_CA_CERTS" in refused.err


def test_env_helm_values_need_the_pem_and_say_so(cli: Any) -> None:
    result = cli("env", "--env-file", str(HTTPS_ENV), "--format", "helm")
    assert result.code == 2
    assert "Helm values carry the PEM itself" in result.err
    assert result.out == ""


def test_env_on_carto_s_https_example_in_a_subprocess() -> None:
    result = run_subprocess("env", "--env-file", str(HTTPS_ENV))
    assert result.returncode == 0, result.stderr
    assert result.stdout == HTTPS_ENV.read_text()
