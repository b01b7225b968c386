"""CARTO's egress lists as data, their routes, and the Squid ACL built from them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from carto_proxy import Action, ProxyConfig, Rule, Warehouse
from carto_proxy._egress import (
    WILDCARD_LABEL,
    EgressDomain,
    load_egress,
    parse_egress,
    route_egress,
    squid_acl,
)
from tests.support.squid import squid_binary

HTTP = ProxyConfig.from_env(environ={"https_proxy": "http://p:3128", "http_proxy": "http://p:3128"})
HTTPS = ProxyConfig.from_env(
    environ={"https_proxy": "https://p:3129", "http_proxy": "https://p:3129"}
)


def entries(list_name: str) -> list[str]:
    (egress,) = load_egress().select([list_name])
    return [d.entry for g in egress.groups for d in g.domains]


def test_both_lists_are_shipped_with_their_sources() -> None:
    data = load_egress()
    assert [item.name for item in data.lists] == ["current", "legacy"]
    assert data.version
    for item in data.lists:
        assert item.source.startswith("https://")
        assert item.groups
        assert any(group.required for group in item.groups)


def test_legacy_list_is_carto_s_full_whitelist() -> None:
    legacy = entries("legacy")
    assert len(legacy) == 22
    assert legacy[:2] == ["auth.carto.com", "bigquery.googleapis.com"]
    assert ".snowflakecomputing.com" in legacy
    assert {"mega.io", "dropbox.com", "filestack.com"}.isdisjoint(legacy)
    (general,) = [g for g in load_egress().select(["legacy"])[0].groups if g.required]
    assert len(general.domains) == 13


def test_current_list_has_the_required_services() -> None:
    (current,) = load_egress().select(["current"])
    required = [d.entry for g in current.groups if g.required for d in g.domains]
    assert required == ["auth.carto.com", "*.self-hosted.carto.com", "docker.io"]


def test_unknown_list_name_is_refused() -> None:
    with pytest.raises(KeyError):
        load_egress().select(["future"])


@pytest.mark.parametrize(
    ("entry", "domain", "wildcard"),
    [
        ("auth.carto.com", "auth.carto.com", False),
        ("*.amazonaws.com", "amazonaws.com", True),
        (".snowflakecomputing.com", "snowflakecomputing.com", True),
        ("Docker.IO", "docker.io", False),
    ],
)
def test_entries_parse(entry: str, domain: str, wildcard: bool) -> None:
    parsed = EgressDomain.parse(entry)
    assert (parsed.domain, parsed.wildcard) == (domain, wildcard)


@pytest.mark.parametrize("entry", ["a.*.example", "", "*", "https://x.example/"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="egress entry"):
        EgressDomain.parse(entry)


def test_wrong_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        parse_egress({"schema": 99, "lists": []})


def test_wildcards_are_routed_as_a_subdomain_so_warehouse_rules_apply() -> None:
    routes = route_egress(HTTPS, load_egress().lists)
    snowflake = [r for r in routes if r.domain.domain == "snowflakecomputing.com"]
    assert len(snowflake) == 2  # '*.' in the current list, '.' in the legacy one
    for item in snowflake:
        assert item.route.target.host == f"{WILDCARD_LABEL}.snowflakecomputing.com"
        assert item.route.warehouse is Warehouse.SNOWFLAKE
        assert item.route.rule is Rule.WAREHOUSE_HTTPS_UNSUPPORTED
        assert item.allow_on == "firewall"
    s3 = [r for r in routes if r.domain.domain == "amazonaws.com"]
    assert all(r.allow_on == "proxy" for r in s3)


def test_every_domain_goes_through_an_http_proxy() -> None:
    routes = route_egress(HTTP, load_egress().lists)
    assert {r.allow_on for r in routes} == {"proxy"}
    assert all(r.route.target.port == 443 for r in routes)


def test_no_proxy_entries_move_domains_to_the_firewall() -> None:
    config = ProxyConfig.from_env(
        environ={"https_proxy": "http://p:3128", "no_proxy": ".googleapis.com"}
    )
    routes = route_egress(config, load_egress().lists)
    google = [r for r in routes if r.domain.domain.endswith("googleapis.com")]
    assert google
    for item in google:
        assert item.allow_on == "firewall"
        assert item.route.matched_entry == ".googleapis.com"


def test_without_a_proxy_everything_is_direct() -> None:
    routes = route_egress(ProxyConfig.direct(), load_egress().lists)
    assert {r.route.action for r in routes} == {Action.DIRECT}


def acl_values(snippet: str) -> list[str]:
    values = []
    for line in snippet.splitlines():
        if line.startswith("acl "):
            values += line.split()[4:]
    return values


def test_squid_acl_allows_exactly_the_proxied_domains_once() -> None:
    routes = route_egress(HTTPS, load_egress().lists)
    snippet = squid_acl(routes, header=["hello"])
    values = acl_values(snippet)
    assert len(values) == len(set(values))
    assert ".snowflakecomputing.com" not in values  # direct behind an https proxy
    assert "auth.carto.com" in values
    assert ".amazonaws.com" in values
    assert "*.amazonaws.com" not in snippet
    assert snippet.startswith("# hello\n")
    acl_names = [line.split()[1] for line in snippet.splitlines() if line.startswith("acl ")]
    allowed = [line.split()[2] for line in snippet.splitlines() if line.startswith("http_access")]
    assert acl_names == allowed
    expected = {r.domain.squid for r in routes if r.route.action is Action.PROXY}
    assert set(values) == expected


def test_squid_acl_drops_hosts_a_later_wildcard_covers() -> None:
    data = parse_egress(
        {
            "schema": 1,
            "version": "t",
            "lists": [
                {
                    "name": "t",
                    "title": "t",
                    "source": "https://example.test",
                    "groups": [
                        {"feature": "One", "required": True, "domains": ["s3.amazonaws.com"]},
                        {"feature": "Two", "required": False, "domains": ["*.amazonaws.com"]},
                    ],
                }
            ],
        }
    )
    snippet = squid_acl(route_egress(HTTP, data.lists))
    assert acl_values(snippet) == [".amazonaws.com"]
    assert "carto_t_one" not in snippet  # its only entry is covered, so no empty ACL


@pytest.mark.integration
def test_squid_parses_the_acl_without_warnings(tmp_path: Path) -> None:
    binary = squid_binary(tls=False)
    acl = tmp_path / "carto-egress.conf"
    acl.write_text(squid_acl(route_egress(HTTP, load_egress().lists), header=["test"]))
    conf = tmp_path / "squid.conf"
    conf.write_text(
        f"http_port 127.0.0.1:3128\npid_filename {tmp_path / 'squid.pid'}\n"
        f"cache_log {tmp_path / 'cache.log'}\ninclude {acl}\nhttp_access deny all\n"
    )
    result = subprocess.run(
        [binary, "-k", "parse", "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "carto_current_required_services dstdomain" in output  # it really read the file
    assert "WARNING" not in output
    assert "ERROR" not in output
