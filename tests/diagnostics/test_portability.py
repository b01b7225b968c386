"""The portability lint: each finding names the tools that read a value differently."""

from __future__ import annotations

from pathlib import Path

import pytest

from carto_proxy import ProxyConfig, Rule, Severity, check
from carto_proxy._diagnostics import TOOLS, Diagnostic, lint, tool_names

RETIRED = {"CP520", "CP521", "CP522", "CP524", "CP526", "CP527", "CP531"}

PROXY = {"HTTP_PROXY": "http://p:3128", "http_proxy": "http://p:3128"} | {
    "HTTPS_PROXY": "http://p:3128",
    "https_proxy": "http://p:3128",
    "GRPC_PROXY": "http://p:3128",
    "grpc_proxy": "http://p:3128",
}


def findings_for(environ: dict[str, str]) -> list[Diagnostic]:
    return lint(ProxyConfig.from_env(environ=environ))


def entry_findings(no_proxy: str, **extra: str) -> list[Diagnostic]:
    return findings_for({**PROXY, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **extra})


def codes(found: list[Diagnostic]) -> list[str]:
    return [f.code for f in found]


# (NO_PROXY value, code, entry, tools that must be named, tools that must not be named)
ENTRY_CASES = [
    (
        "*.snowflakecomputing.com",
        "CP501",
        "*.snowflakecomputing.com",
        {"curl", "urllib", "requests", "httpx", "grpc"},
        {"go", "undici", "proxy-from-env"},
    ),
    ("example.com:8080", "CP504", "example.com:8080", {"curl", "grpc"}, {"httpx", "urllib"}),
    ("example.com:443", "CP504", "example.com:443", {"curl", "grpc", "httpx", "urllib"}, {"go"}),
    ("10.20.30.40:8080", "CP504", "10.20.30.40:8080", {"curl", "grpc", "requests"}, {"go"}),
    (
        "10.0.0.0/8",
        "CP505",
        "10.0.0.0/8",
        {"urllib", "httpx", "proxy-from-env"},
        {"curl", "requests", "grpc", "go"},
    ),
    ("2001:db8::/32", "CP506", "2001:db8::/32", {"httpx", "urllib", "requests"}, {"grpc", "go"}),
    ("2001:db8::1", "CP507", "2001:db8::1", {"urllib", "undici"}, {"httpx", "grpc"}),
    ("[2001:db8::1]", "CP508", "[2001:db8::1]", {"go", "httpx", "grpc"}, {"urllib"}),
    ("foo.com,*", "CP509", "*", {"urllib", "requests", "curl", "grpc"}, {"httpx", "go"}),
    ("*", "CP509", "*", {"grpc"}, {"httpx", "urllib", "curl"}),
    ("example.com.", "CP510", "example.com.", {"go", "httpx", "grpc"}, {"curl"}),
    ("bücher.example", "CP511", "bücher.example", {"httpx", "requests"}, {"go", "grpc"}),
    ("a.example b.example", "CP512", "a.example b.example", {"curl", "undici"}, {"go"}),
    (".example.com", "CP502", ".example.com", {"go", "httpx"}, {"curl", "urllib"}),
    ("dropbox.com", "CP503", "dropbox.com", {"proxy-from-env"}, {"curl", "httpx"}),
]


@pytest.mark.parametrize(("no_proxy", "code", "entry", "named", "not_named"), ENTRY_CASES)
def test_entry_findings_name_the_tools_that_differ(
    no_proxy: str, code: str, entry: str, named: set[str], not_named: set[str]
) -> None:
    found = [f for f in entry_findings(no_proxy) if f.code == code and f.entry == entry]
    assert len(found) == 1, entry_findings(no_proxy)
    (finding,) = found
    assert finding.variable == "no_proxy"
    assert named <= set(finding.tools)
    assert not (not_named & set(finding.tools))
    for tool in finding.tools:
        assert TOOLS[tool] in finding.message or tool in finding.message.lower()


def test_wildcard_fix_writes_the_leading_dot_form() -> None:
    (finding,) = [f for f in entry_findings("*.snowflakecomputing.com") if f.code == "CP501"]
    assert ".snowflakecomputing.com" in finding.fix
    assert "*." not in finding.fix
    assert finding.severity is Severity.WARNING


@pytest.mark.parametrize(
    "no_proxy", ["localhost", ".svc.cluster.local,localhost", "10.20.30.40", "169.254.169.254"]
)
def test_entries_every_tool_reads_alike_give_no_warning(no_proxy: str) -> None:
    assert [f for f in entry_findings(no_proxy) if f.severity is Severity.WARNING] == []


def test_entries_carto_proxy_ignores_itself_are_left_to_check() -> None:
    # CP201 (core) reports them; the lint must not add a second, contradicting finding.
    assert entry_findings("http://example.com/path,exa*mple.com") == []


def test_with_no_grpc_proxy_only_grpc_reads_it_and_grpc_drops_out_of_no_proxy() -> None:
    found = entry_findings("*.a.example", NO_GRPC_PROXY="*.b.example", no_grpc_proxy="*.b.example")
    by_entry = {f.entry: f for f in found if f.code == "CP501"}
    assert by_entry["*.b.example"].tools == ("grpc",)
    assert by_entry["*.b.example"].variable == "no_grpc_proxy"
    assert "grpc" not in by_entry["*.a.example"].tools


def test_duplicate_entries_are_reported_once() -> None:
    found = entry_findings("*.x.example,*.X.example")
    assert codes(found).count("CP501") == 1


# What other tools do with how a variable is written is check()'s finding, with the tools
# named; the lint says nothing more (one finding per problem).
# (environment, check code, variable, tools the finding names)
SAID_BY_CHECK = [
    (
        {"HTTP_PROXY": "http://p:3128", "HTTPS_PROXY": "http://p:3128"},
        "CP102",
        "http_proxy",
        ("curl", "grpc"),
    ),
    ({"HTTPS_PROXY": "http://p:3128"}, "CP102", "https_proxy", ("grpc",)),
    ({**PROXY, "grpc_proxy": "", "GRPC_PROXY": "http://p:3128"}, "CP102", "grpc_proxy", ("grpc",)),
    ({"https_proxy": "http://p:3128"}, "CP102", "HTTPS_PROXY", ()),
    ({**PROXY, "HTTPS_PROXY": "http://other:3128"}, "CP103", "HTTPS_PROXY", ("go",)),
    (
        {**PROXY, "https_proxy": ""},
        "CP111",
        "https_proxy",
        ("urllib", "requests", "httpx", "undici", "grpc"),
    ),
    (
        {**PROXY, "NO_PROXY": "a.example", "no_proxy": " "},
        "CP111",
        "no_proxy",
        ("urllib", "httpx", "undici", "grpc"),
    ),
    ({"https_proxy": "p:3128"}, "CP104", "https_proxy", ("grpc", "undici", "proxy-from-env")),
    ({**PROXY, "grpc_proxy": "p:3128", "GRPC_PROXY": "p:3128"}, "CP104", "grpc_proxy", ("grpc",)),
    ({"https_proxy": "http://p"}, "CP105", "https_proxy", ("curl", "grpc")),
    (
        {"http_proxy": "http://p:3128", "HTTP_PROXY": "http://p:3128"},
        "CP101",
        "HTTPS_PROXY",
        ("undici",),
    ),
    ({"grpc_proxy": "https://p:3129"}, "CP108", "GRPC_PROXY", ("grpc",)),
]


@pytest.mark.parametrize(("environ", "code", "variable", "tools"), SAID_BY_CHECK)
def test_check_names_the_tools_and_the_lint_does_not_repeat_it(
    environ: dict[str, str], code: str, variable: str, tools: tuple[str, ...]
) -> None:
    (said,) = [d for d in check(environ=environ) if d.code == code and d.variable == variable]
    assert said.tools == tools
    assert [
        f.code
        for f in findings_for(environ)
        if f.variable in {variable, variable.lower()} and not f.code.startswith(("CP50", "CP51"))
    ] in ([], ["CP525"], ["CP523"])


def test_the_lint_never_reports_a_retired_variable_code() -> None:
    environments = [environ for environ, *_ in SAID_BY_CHECK]
    for environ in environments:
        assert {f.code for f in findings_for(environ)}.isdisjoint(RETIRED), environ


@pytest.mark.parametrize(
    ("value", "code", "tools"),
    [
        (" http://p:3128", "CP523", {"urllib", "requests", "httpx", "go", "curl", "grpc"}),
        ("https://p:3129", "CP525", {"urllib"}),
    ],
)
def test_proxy_values_other_tools_misread(value: str, code: str, tools: set[str]) -> None:
    found = findings_for({"https_proxy": value, "HTTPS_PROXY": value})
    matching = [f for f in found if f.code == code]
    assert matching, found
    assert {f.variable for f in matching} == {"https_proxy"}
    assert set(matching[0].tools) == tools


def test_an_https_grpc_proxy_is_check_s_finding_only() -> None:
    environ = {**PROXY, "grpc_proxy": "https://p:3129", "GRPC_PROXY": "https://p:3129"}
    assert [f for f in findings_for(environ) if f.variable == "grpc_proxy"] == []
    assert "CP108" in {d.code for d in check(environ=environ)}


def test_carto_examples_have_no_warning_level_entry_findings() -> None:
    examples = Path(__file__).parents[2] / "examples"
    config = ProxyConfig.from_env_file(examples / "http-proxy.env")
    assert [f for f in lint(config) if f.severity is Severity.WARNING] == []


def test_password_in_an_entry_never_appears() -> None:
    found = entry_findings("http://user:s3cret@host.example:8080 x.example")
    assert found
    for finding in found:
        assert "s3cret" not in f"{finding.entry} {finding.message} {finding.fix}"


def helm(tmp_path: Path, excluded: str) -> ProxyConfig:
    values = tmp_path / "values.yaml"
    values.write_text(
        "externalProxy:\n  enabled: true\n  type: http\n  host: p\n  port: 3128\n"
        f"  excludedDomains: [{excluded!r}]\n"
    )
    return ProxyConfig.from_helm_values(values)


def test_helm_values_without_cluster_exclusion_get_the_kubernetes_hint(tmp_path: Path) -> None:
    found = lint(helm(tmp_path, "localhost"))
    (finding,) = [f for f in found if f.code == "CP530"]
    assert finding.severity is Severity.WARNING
    assert finding.variable == "externalProxy.excludedDomains"
    assert ".svc.cluster.local" in finding.fix
    assert "CP531" not in {f.code for f in found}  # retired: check()'s CP205 says it


def test_helm_entries_are_reported_under_excluded_domains(tmp_path: Path) -> None:
    (finding,) = [f for f in lint(helm(tmp_path, "*.snowflakecomputing.com")) if f.code == "CP501"]
    assert finding.variable == "externalProxy.excludedDomains"


def test_helm_values_as_carto_documents_them_get_no_kubernetes_hint(tmp_path: Path) -> None:
    config = helm(tmp_path, "localhost,.svc.cluster.local")
    assert [f.code for f in lint(config) if f.code.startswith("CP53")] == []
    # The metadata server is one problem, reported once, by check().
    assert [d.code for d in check(config) if d.code in {"CP205", "CP531"}] == ["CP205"]
    gke = "localhost,.svc.cluster.local,169.254.169.254,metadata,metadata.google.internal"
    assert "CP205" not in {d.code for d in check(helm(tmp_path, gke))}


def test_kubernetes_hints_only_for_helm_values() -> None:
    assert not [f for f in findings_for(PROXY) if f.code.startswith("CP53")]


def test_findings_are_sorted_warnings_first() -> None:
    found = entry_findings(".a.example,*.b.example,c.example")
    severities = [f.severity for f in found]
    assert severities == sorted(severities, key=[Severity.WARNING, Severity.INFO].index)


def test_tool_names_reads_as_a_sentence() -> None:
    assert tool_names(["curl"]) == "curl"
    assert tool_names(["curl", "grpc"]) == "curl and gRPC"
    assert tool_names(["go", "curl", "grpc"]) == "Go net/http, curl and gRPC"


def test_a_domain_listed_with_and_without_its_dot_is_read_alike_by_every_tool() -> None:
    # Go, httpx and proxy-from-env take "corp.example" for the apex and ".corp.example" for
    # the subdomains: together they say what carto_proxy reads in either.
    assert entry_findings("corp.example,.corp.example") == []
    assert codes(entry_findings("corp.example,.other.example")) == ["CP502", "CP503"]
    assert codes(entry_findings("corp.example:8443,.corp.example:8443")) == ["CP504", "CP504"]


@pytest.mark.parametrize("entry", ["2001:db8::/32", "[2001:db8::]/32"])
def test_a_cidr_entry_is_read_as_routing_reads_it(entry: str) -> None:
    # carto_proxy uses both spellings; the lint must judge both (one CIDR reader for all).
    route = ProxyConfig.from_env(environ={"no_proxy": entry}).route("https://[2001:db8::1]/")
    assert route.rule is Rule.NO_PROXY
    assert "CP506" in codes(entry_findings(entry))
