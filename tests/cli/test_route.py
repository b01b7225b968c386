"""carto-proxy route: the decision for each target, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.helpers import (
    HTTP_PROXY,
    HTTPS_ENV,
    ROUTE_KEYS,
    SNOWFLAKE,
    both,
    run_subprocess,
)


def test_route_json_objects_are_named_after_route_attributes(cli: Any) -> None:
    environ = both(https_proxy="https://my-proxy:3129", no_proxy="dropbox.com")
    result = cli(
        "route", "--json", SNOWFLAKE, "auth.carto.com", "https://www.dropbox.com", environ=environ
    )
    assert result.code == 0
    snowflake, auth, dropbox = result.json()
    assert all(set(item) == ROUTE_KEYS | {"input"} for item in (snowflake, auth, dropbox))
    assert snowflake == {
        "input": SNOWFLAKE,
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
        "variable": "HTTPS_PROXY",
    }
    assert "Snowflake" in snowflake["reason"]
    assert auth["action"] == "proxy"
    assert auth["proxy"] == "https://my-proxy:3129"
    assert auth["rule"] == "proxy"
    assert dropbox["matched_entry"] == "dropbox.com"
    assert dropbox["rule"] == "no_proxy"
    assert dropbox["variable"] == "NO_PROXY"
    assert (auth["input"], dropbox["input"]) == ("auth.carto.com", "https://www.dropbox.com")


def test_route_json_input_is_the_target_as_given_with_user_info_masked(cli: Any) -> None:
    targets = ["postgresql://carto:S3cretPW@db.internal:5432/carto", "https://alice@api.example"]
    routes = cli("route", "--json", *targets, environ=HTTP_PROXY).json()
    assert [r["input"] for r in routes] == [
        "postgresql://***@db.internal:5432/carto",
        "https://***@api.example",
    ]
    assert [r["variable"] for r in routes] == [None, "HTTPS_PROXY"]  # TCP uses no variable


def test_route_shows_the_tcp_protocol_for_tcp_targets(cli: Any) -> None:
    argv = ["--warehouse", "postgresql", "db.internal:5432"]
    (route,) = cli("route", "--json", *argv, environ=HTTP_PROXY).json()
    assert route["target"] == {"protocol": "tcp", "host": "db.internal", "port": 5432}
    assert (route["rule"], route["needs_direct_egress"]) == ("tcp_bypass", True)
    table = cli(
        "route", "postgresql://db.internal/x", "redshift://x.abc.eu-west-1.redshift.amazonaws.com/d"
    )
    assert table.code == 0
    rows = [line.split()[0] for line in table.out.splitlines() if not line.startswith(" ")]
    assert rows[1:] == [
        "tcp://db.internal:5432",
        "tcp://x.abc.eu-west-1.redshift.amazonaws.com:5439",
    ]


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


def test_route_defers_a_ca_file_only_the_server_has(cli: Any) -> None:
    assert not Path("/opt/carto/certs/proxy-ca.crt").exists()
    result = cli("route", "--json", "--env-file", str(HTTPS_ENV), "auth.carto.com")
    assert result.code == 0, result.err
    assert result.json()[0]["proxy"] == "https://my-proxy:3129"
    assert result.err == ""  # not read, so nothing to say about it


def test_route_notes_a_refused_trust_setting_it_does_not_need(cli: Any) -> None:
    environ = both(https_proxy="http://p:3128") | {"NODE_TLS_REJECT_UNAUTHORIZED": "no"}
    result = cli("route", "--json", "auth.carto.com", environ=environ)
    assert result.code == 0
    assert "NODE_TLS_REJECT_UNAUTHORIZED 'no' must be 0 or 1; routing does not need it" in (
        result.err
    )


def test_route_on_carto_s_https_example_in_a_subprocess() -> None:
    result = run_subprocess(
        "route", "--json", "--env-file", str(HTTPS_ENV), "--warehouse", "redshift", "dw.corp:5439"
    )
    assert (result.returncode, result.stderr) == (0, "")
    (route,) = json.loads(result.stdout)
    assert (route["input"], route["target"]["protocol"]) == ("dw.corp:5439", "tcp")
    assert route["needs_direct_egress"] is True
