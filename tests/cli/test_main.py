"""The carto-proxy command: check, route, egress and env, in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from carto_proxy import ProxyConfig
from carto_proxy.cli import main
from carto_proxy.cli._shared import scrub
from tests.support.pki import PKI

EXAMPLES = Path(__file__).parents[2] / "examples"
HTTP_ENV = EXAMPLES / "http-proxy.env"
HTTPS_ENV = EXAMPLES / "https-proxy.env"
HELM = EXAMPLES / "customizations.yaml"
SNOWFLAKE = "https://xy12345.eu-central-1.snowflakecomputing.com"


def both(**variables: str) -> dict[str, str]:
    """Each variable in both cases, as CARTO asks."""
    out = {}
    for name, value in variables.items():
        out[name.upper()] = out[name.lower()] = value
    return out


HTTP_PROXY = both(http_proxy="http://my-proxy:3128", https_proxy="http://my-proxy:3128") | both(
    grpc_proxy="http://my-proxy:3128"
)


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str, environ: Mapping[str, str] | None = None) -> Result:
        code = main(list(argv), environ={} if environ is None else environ)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


# --- the shell -----------------------------------------------------------------------------


def test_version_and_help_exit_0(cli: Any) -> None:
    assert cli("--version").code == 0
    result = cli("--help")
    assert result.code == 0
    for command in ("check", "route", "egress", "env", "probe", "demo"):
        assert command in result.out


def test_no_command_is_a_usage_error(cli: Any) -> None:
    result = cli()
    assert result.code == 2
    assert "check" in result.err


def test_unknown_option_is_a_usage_error(cli: Any) -> None:
    assert cli("check", "--frobnicate").code == 2


def test_env_file_and_helm_values_exclude_each_other(cli: Any) -> None:
    assert cli("check", "--env-file", str(HTTP_ENV), "--helm-values", str(HELM)).code == 2


@pytest.mark.parametrize("command", [["check"], ["route", "x.example"], ["egress"], ["env"]])
@pytest.mark.parametrize("option", ["--env-file", "--helm-values"])
def test_a_missing_source_file_exits_2_with_a_message(
    cli: Any, command: list[str], option: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    result = cli(*command, option, str(missing))
    assert result.code == 2
    assert "no such file" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


# --- check ---------------------------------------------------------------------------------


def test_check_on_a_clean_environment_exits_0(cli: Any) -> None:
    result = cli("check")
    assert result.code == 0
    assert "Source: environment" in result.out
    assert result.out.count("none") == 2


def test_check_json_has_diagnostics_and_portability(cli: Any) -> None:
    result = cli("check", "--json", "--env-file", str(HTTPS_ENV))
    document = result.json()
    assert set(document) == {"diagnostics", "portability"}
    keys = {"code", "severity", "variable", "entry", "tools", "message", "fix"}
    for finding in document["diagnostics"] + document["portability"]:
        assert set(finding) == keys
        assert finding["severity"] in {"error", "warning", "info"}
        assert isinstance(finding["tools"], list)
    diagnostic_codes = {d["code"] for d in document["diagnostics"]}
    assert {"CP202", "CP305"} <= diagnostic_codes  # no .snowflakecomputing.com; CA not here
    assert all(p["code"].startswith("CP5") for p in document["portability"])
    assert result.code == 1  # CP305 (the CA file does not exist here) is an error


def test_check_reports_lint_findings_with_tools(cli: Any) -> None:
    environ = HTTP_PROXY | both(no_proxy="*.snowflakecomputing.com")
    result = cli("check", "--json", environ=environ)
    assert result.code == 0
    (finding,) = [p for p in result.json()["portability"] if p["code"] == "CP501"]
    assert finding["entry"] == "*.snowflakecomputing.com"
    assert finding["variable"] == "no_proxy"
    assert set(finding["tools"]) == {"curl", "urllib", "requests", "httpx", "grpc"}
    assert ".snowflakecomputing.com" in finding["fix"]


def test_check_strict_fails_on_lint_warnings(cli: Any) -> None:
    environ = HTTP_PROXY | both(no_proxy="*.snowflakecomputing.com")
    assert cli("check", environ=environ).code == 0
    result = cli("check", "--strict", environ=environ)
    assert result.code == 1
    assert "CP501" in result.out


def test_check_strict_fails_on_warnings_but_not_on_info(cli: Any) -> None:
    assert cli("check", "--strict", environ=HTTP_PROXY).code == 0
    info_only = HTTP_PROXY | both(no_proxy="dropbox.com")  # CP503 is info
    assert cli("check", "--strict", environ=info_only).code == 0
    warning = {k: v for k, v in HTTP_PROXY.items() if k.isupper()}  # CP102 and CP520
    assert cli("check", environ=warning).code == 0
    assert cli("check", "--strict", environ=warning).code == 1


def test_check_errors_exit_1_and_never_show_the_password(cli: Any) -> None:
    environ = both(https_proxy="http://alice:s3cret@my-proxy:3128", no_proxy="http://u:pw2@x")
    for argv in (["check"], ["check", "--json"]):
        result = cli(*argv, environ=environ)
        assert result.code == 1
        assert "CP106" in result.out
        assert "s3cret" not in result.out + result.err
        assert "pw2" not in result.out + result.err


def test_check_reports_an_unreadable_helm_value_as_an_error(cli: Any, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("externalProxy:\n  enabled: true\n  type: socks5\n  host: p\n  port: 1\n")
    result = cli("check", "--json", "--helm-values", str(values))
    assert result.code == 1
    (diagnostic,) = result.json()["diagnostics"]
    assert diagnostic["severity"] == "error"
    assert diagnostic["variable"] == "externalProxy.type"
    assert "Traceback" not in result.err


def test_check_reports_bad_yaml_without_a_traceback(cli: Any, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("externalProxy: [unclosed\n")
    result = cli("check", "--helm-values", str(values))
    assert result.code == 1
    assert "not valid YAML" in result.out
    assert "Traceback" not in result.out + result.err


def test_check_helm_example_only_has_the_gke_hint(cli: Any) -> None:
    result = cli("check", "--json", "--helm-values", str(HELM))
    assert result.code == 0
    document = result.json()
    assert [d for d in document["diagnostics"] if d["severity"] != "info"] == []
    assert [p["code"] for p in document["portability"] if p["code"].startswith("CP53")] == ["CP531"]


def test_check_http_example_passes_strict(cli: Any) -> None:
    assert cli("check", "--strict", "--env-file", str(HTTP_ENV)).code == 0


# --- route ---------------------------------------------------------------------------------


ROUTE_KEYS = {
    "action",
    "proxy",
    "rule",
    "reason",
    "target",
    "warehouse",
    "matched_entry",
    "needs_direct_egress",
}


def test_route_json_objects_are_named_after_route_attributes(cli: Any) -> None:
    environ = both(https_proxy="https://my-proxy:3129", no_proxy="dropbox.com")
    result = cli(
        "route", "--json", SNOWFLAKE, "auth.carto.com", "https://www.dropbox.com", environ=environ
    )
    assert result.code == 0
    snowflake, auth, dropbox = result.json()
    assert all(set(item) == ROUTE_KEYS for item in (snowflake, auth, dropbox))
    assert snowflake == {
        "action": "direct",
        "proxy": None,
        "rule": "warehouse_https_unsupported",
        "reason": snowflake["reason"],
        "target": {
            "protocol": "https",
            "host": "xy12345.eu-central-1.snowflakecomputing.com",
            "port": 443,
        },
        "warehouse": "snowflake",
        "matched_entry": None,
        "needs_direct_egress": True,
    }
    assert "Snowflake" in snowflake["reason"]
    assert auth["action"] == "proxy"
    assert auth["proxy"] == "https://my-proxy:3129"
    assert auth["rule"] == "proxy"
    assert dropbox["matched_entry"] == "dropbox.com"
    assert dropbox["rule"] == "no_proxy"


def test_route_protocol_and_warehouse_options(cli: Any) -> None:
    environ = both(https_proxy="https://my-proxy:3129")
    grpc, databricks = (
        cli("route", "--json", *argv, environ=environ).json()[0]
        for argv in (
            ["--protocol", "grpc", "bigquerystorage.googleapis.com:443"],
            ["--warehouse", "databricks", "https://dbc-1.example.com"],
        )
    )
    assert grpc["rule"] == "grpc_https_unsupported"
    assert grpc["target"]["protocol"] == "grpc"
    assert databricks["rule"] == "warehouse_unsupported"
    assert databricks["warehouse"] == "databricks"


def test_route_table_shows_rule_entry_and_egress(cli: Any) -> None:
    environ = both(https_proxy="https://my-proxy:3129", no_proxy="dropbox.com")
    result = cli("route", SNOWFLAKE, "https://www.dropbox.com", environ=environ)
    assert result.code == 0
    lines = result.out.splitlines()
    header = lines[0]
    (snowflake,) = [line for line in lines if line.startswith("https://xy12345")]
    (dropbox,) = [line for line in lines if line.startswith("https://www.dropbox.com")]
    snowflake_reason = lines[lines.index(snowflake) + 1 : lines.index(dropbox)]
    assert header.split()[:4] == ["TARGET", "ACTION", "VIA", "RULE"]
    expected = ["direct", "-", "warehouse_https_unsupported", "snowflake", "-", "yes"]
    assert snowflake.split()[1:] == expected
    assert all(line.startswith("    ") for line in snowflake_reason)
    assert "direct egress" in " ".join(snowflake_reason)
    assert "dropbox.com" in dropbox.split()


def test_route_unparsable_target_exits_2_and_prints_no_routes(cli: Any) -> None:
    result = cli("route", "--json", "auth.carto.com", "http://[::1", environ=HTTP_PROXY)
    assert result.code == 2
    assert result.out == ""
    assert "http://[::1" in result.err


def test_route_refused_proxy_value_exits_1_without_the_password(cli: Any) -> None:
    result = cli("route", "x.example", environ=both(https_proxy="http://bob:hunter2@p:1"))
    assert result.code == 1
    assert "hunter2" not in result.out + result.err
    assert "CP106" not in result.err or "password" in result.err


def test_route_ignores_a_ca_file_only_the_server_has(cli: Any) -> None:
    result = cli("route", "--json", "--env-file", str(HTTPS_ENV), "auth.carto.com")
    assert result.code == 0
    assert result.json()[0]["proxy"] == "https://my-proxy:3129"
    assert "routing does not need it" in result.err


# --- egress --------------------------------------------------------------------------------


def test_egress_json_says_what_proxy_and_firewall_must_allow(cli: Any) -> None:
    result = cli("egress", "--json", "--list", "current", "--env-file", str(HTTPS_ENV))
    assert result.code == 0
    document = result.json()
    assert [item["name"] for item in document["lists"]] == ["current"]
    assert document["firewall_must_allow"] == ["*.snowflakecomputing.com"]
    assert "auth.carto.com" in document["proxy_must_allow"]
    assert not set(document["proxy_must_allow"]) & set(document["firewall_must_allow"])
    snowflake = document["lists"][0]["groups"][-1]["domains"][0]
    assert snowflake["wildcard"] is True
    assert snowflake["allow_on"] == "firewall"
    assert set(snowflake["route"]) == ROUTE_KEYS
    assert snowflake["route"]["warehouse"] == "snowflake"


def test_egress_table_lists_both_lists_by_default(cli: Any) -> None:
    result = cli("egress", environ=HTTP_PROXY)
    assert result.code == 0
    assert "'current'" in result.out
    assert "'legacy'" in result.out
    assert "The firewall must allow direct egress to (0): nothing." in result.out


def test_egress_squid_format(cli: Any) -> None:
    result = cli("egress", "--format", "squid", "--env-file", str(HTTP_ENV))
    assert result.code == 0
    lines = result.out.splitlines()
    assert any(line.startswith("acl carto_") and "dstdomain" in line for line in lines)
    assert any(line.startswith("http_access allow carto_") for line in lines)


def test_egress_squid_format_without_proxy_warns(cli: Any) -> None:
    result = cli("egress", "--format", "squid")
    assert result.code == 0
    assert "no proxy is configured" in result.err
    assert not [line for line in result.out.splitlines() if line.startswith("acl")]


def test_egress_squid_and_json_exclude_each_other(cli: Any) -> None:
    assert cli("egress", "--format", "squid", "--json").code == 2


# --- env -----------------------------------------------------------------------------------


def test_env_writes_carto_s_http_block_exactly(cli: Any) -> None:
    no_proxy = "localhost,mega.io,dropbox.com,filestack.com"
    result = cli("env", "--proxy", "http://my-proxy:3128", "--no-proxy", no_proxy)
    assert result.code == 0
    assert result.out == HTTP_ENV.read_text()


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
    assert "NODE_TLS_REJECT_UNAUTHORIZED" not in http


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


# --- never the network ---------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: object, **kwargs: object) -> Any:
            calls.append(f"{name}{args[:2]}")
            raise AssertionError(f"network use: {name}{args}")

        return call

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, refuse(name))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    return calls


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--strict"],
        ["check", "--json"],
        ["route", SNOWFLAKE, "grpc://bigquerystorage.googleapis.com", "postgres://db:5432/x"],
        ["egress"],
        ["egress", "--format", "squid"],
        ["env", "--format", "helm"],
    ],
)
def test_offline_commands_never_touch_the_network(
    cli: Any, no_network: list[str], argv: list[str]
) -> None:
    environ = both(https_proxy="http://proxy.corp.example:3128") | both(
        http_proxy="http://proxy.corp.example:3128", grpc_proxy="http://proxy.corp.example:3128"
    )
    result = cli(*argv, environ=environ | both(no_proxy="db.internal,*.x.example"))
    assert no_network == []
    assert result.code in (0, 1)


# --- output hygiene ------------------------------------------------------------------------


def test_scrub_masks_any_url_password() -> None:
    assert (
        scrub("see http://u:pw@h:1 and https://x:y@z") == "see http://u:***@h:1 and https://x:***@z"
    )
    assert scrub("http://host:3128/path@x") == "http://host:3128/path@x"


# --- as a real subprocess ------------------------------------------------------------------


def run_subprocess(*argv: str, environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("NODE_EXTRA_CA_CERTS", None)
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)
    return subprocess.run(
        [sys.executable, "-m", "carto_proxy", *argv],
        env=env | dict(environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["check", "--json"], 0),
        (["route", "--json", SNOWFLAKE], 0),
        (["egress", "--json", "--list", "legacy"], 0),
        (["env", "--json"], 0),
        (["route", "http://[::1"], 2),
    ],
)
def test_python_m_carto_proxy(argv: list[str], code: int) -> None:
    result = run_subprocess(*argv, environ=HTTP_PROXY)
    assert result.returncode == code, result.stderr
    if code == 0:
        assert json.loads(result.stdout)
    assert "Traceback" not in result.stderr


def test_python_m_carto_proxy_reads_the_process_environment() -> None:
    result = run_subprocess("route", "--json", "auth.carto.com", environ=HTTP_PROXY)
    assert json.loads(result.stdout)[0]["proxy"] == "http://my-proxy:3128"


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    with subprocess.Popen(
        # ~150 kB: more than a pipe holds, so the writer is still writing when the reader quits
        [sys.executable, "-m", "carto_proxy", "route", "--json"]
        + [f"https://host{i}.example" for i in range(500)],
        env=env | HTTP_PROXY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # like `| head -1`
        errors = process.stderr.read().decode()
        assert process.wait(timeout=60) == 1
    assert "Traceback" not in errors
    assert "BrokenPipeError" not in errors


def test_check_on_a_binary_file_reports_it_without_a_traceback(cli: Any, tmp_path: Path) -> None:
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe")
    result = cli("check", "--env-file", str(binary))
    assert result.code == 1
    assert "UTF-8" in result.out
    assert "Traceback" not in result.out + result.err
