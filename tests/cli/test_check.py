"""carto-proxy check: every diagnostic and portability finding, and the exit status they give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.helpers import (
    HELM,
    HTTP_ENV,
    HTTP_PROXY,
    HTTPS_ENV,
    both,
    run_subprocess,
)

METADATA = "169.254.169.254,metadata,metadata.google.internal"


def test_check_on_a_clean_environment_exits_0(cli: Any) -> None:
    result = cli("check")
    assert result.code == 0
    assert "Source: environment" in result.out
    assert "CP113  info" in result.out  # no proxy configured: said, and exit 0
    assert result.out.count("none") == 1  # no portability finding


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
    clean = HTTP_PROXY | both(no_proxy=METADATA)
    assert cli("check", "--strict", environ=clean).code == 0
    info_only = HTTP_PROXY | both(no_proxy=f"{METADATA},dropbox.com")  # CP503 is info
    assert cli("check", "--strict", environ=info_only).code == 0
    warning = {k: v for k, v in clean.items() if k.isupper()}  # CP102
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


def test_check_helm_example_only_has_the_metadata_server_findings(cli: Any) -> None:
    result = cli("check", "--json", "--helm-values", str(HELM))
    assert result.code == 0
    document = result.json()
    assert [d["code"] for d in document["diagnostics"] if d["severity"] != "info"] == ["CP205"]
    # The lint does not repeat check()'s CP205 (one finding per problem).
    assert [p["code"] for p in document["portability"] if p["code"].startswith("CP53")] == []


def test_check_http_example_fails_strict_only_on_the_metadata_server(cli: Any) -> None:
    result = cli("check", "--strict", "--env-file", str(HTTP_ENV))
    assert result.code == 1
    assert "CP205" in result.out
    assert "0 error(s), 1 warning(s), 0 info; 3 portability finding(s) (0 warning(s))" in result.out


# --- --ca-elsewhere (issue 13 §1) -------------------------------------------------------------


def codes(result: Any) -> list[str]:
    return [d["code"] for d in result.json()["diagnostics"]]


def test_check_reports_a_missing_ca_file_unless_it_is_checked_elsewhere(cli: Any) -> None:
    assert not Path("/opt/carto/certs/proxy-ca.crt").exists()
    here = cli("check", "--json", "--env-file", str(HTTPS_ENV))
    assert here.code == 1
    assert "CP305" in codes(here)
    assert "CP307" not in codes(here)
    elsewhere = cli("check", "--json", "--ca-elsewhere", "--env-file", str(HTTPS_ENV))
    assert elsewhere.code == 0
    assert codes(elsewhere).count("CP307") == 1
    assert "CP305" not in codes(elsewhere)
    # The same findings otherwise, plus what applies to a usable CA: CP304 (custom CA with
    # an HTTPS proxy), which an unusable CA (CP305) leaves out.
    assert set(codes(elsewhere)) == set(codes(here)) - {"CP305"} | {"CP307", "CP304"}
    (info,) = [d for d in elsewhere.json()["diagnostics"] if d["code"] == "CP307"]
    assert (info["severity"], info["variable"]) == ("info", "NODE_EXTRA_CA_CERTS")


def test_check_ca_elsewhere_still_reports_every_other_error(cli: Any) -> None:
    environ = both(https_proxy="http://u:pw@p:3128") | {"NODE_EXTRA_CA_CERTS": "/nowhere.pem"}
    result = cli("check", "--json", "--ca-elsewhere", environ=environ)
    assert result.code == 1
    assert {"CP106", "CP307"} <= set(codes(result))


def test_check_ca_elsewhere_in_a_subprocess() -> None:
    here = run_subprocess("check", "--env-file", str(HTTPS_ENV))
    elsewhere = run_subprocess("check", "--env-file", str(HTTPS_ENV), "--ca-elsewhere")
    assert (here.returncode, elsewhere.returncode) == (1, 0), here.stderr + elsewhere.stderr
    assert "CP305" in here.stdout
    assert "CP307" in elsewhere.stdout
    assert "CP305" not in elsewhere.stdout
