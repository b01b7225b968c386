"""carto-proxy egress: CARTO's egress lists routed, and the Squid ACL they give."""

from __future__ import annotations

from typing import Any

from tests.cli.helpers import (
    HTTP_ENV,
    HTTP_PROXY,
    HTTPS_ENV,
    ROUTE_KEYS,
    run_subprocess,
)


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


def test_egress_does_not_read_a_ca_file_only_the_server_has(cli: Any) -> None:
    for argv in (["--json"], ["--format", "squid"]):
        result = cli("egress", *argv, "--env-file", str(HTTPS_ENV))
        assert result.code == 0
        assert "NODE_EXTRA_CA_CERTS" not in result.err  # not read: nothing to say about it
    in_process = cli("egress", "--format", "squid", "--env-file", str(HTTPS_ENV)).out
    child = run_subprocess("egress", "--format", "squid", "--env-file", str(HTTPS_ENV))
    assert (child.returncode, child.stderr) == (0, "")
    assert child.stdout == in_process
