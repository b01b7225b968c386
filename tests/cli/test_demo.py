"""carto-proxy demo: every installed adapter, CARTO's two examples, loopback only."""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from carto_proxy.cli import main
from carto_proxy.cli._demo import _requests, _scenarios
from carto_proxy.exceptions import MissingExtraError

pytestmark = pytest.mark.integration

INSTALLED = [
    name
    for name, module in (
        ("httpx", "httpx"),
        ("urllib3", "urllib3"),
        ("requests", "requests"),
        ("grpc", "grpc"),
        ("bigquery", "google.cloud.bigquery"),
        ("snowflake", "snowflake.connector"),
    )
    if importlib.util.find_spec(module.partition(".")[0]) is not None
    and importlib.util.find_spec(f"carto_proxy.adapters.{name}") is not None
]


def run_demo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["demo", "--json", *argv], environ={})
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    """One in-process run of the demo on CARTO's examples (it takes a few seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "GRPC_PROXY"):
            patch.delenv(name, raising=False)
            patch.delenv(name.lower(), raising=False)
        # A real-looking proxy in the process environment must not be used by anything.
        patch.setenv("HTTPS_PROXY", "http://192.0.2.1:3128")
        patch.setenv("https_proxy", "http://192.0.2.1:3128")
        lookups: list[str] = []
        original = socket.getaddrinfo

        def record(host: Any, *args: Any, **kwargs: Any) -> Any:
            lookups.append(str(host))
            return original(host, *args, **kwargs)

        patch.setattr(socket, "getaddrinfo", record)
        started = time.monotonic()
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["demo", "--json"], environ={})
        elapsed = time.monotonic() - started
        assert os.environ["HTTPS_PROXY"] == "http://192.0.2.1:3128"  # restored
    document: dict[str, Any] = json.loads(out.getvalue())
    document["_code"], document["_elapsed"], document["_lookups"] = code, elapsed, lookups
    return document


def requests_by_label(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{r['adapter']} {r['request']}": r for r in scenario["requests"]}


def test_demo_succeeds_quickly_on_both_examples(demo: dict[str, Any]) -> None:
    assert demo["_code"] == 0, json.dumps(demo, indent=1)[:3000]
    assert demo["ok"] is True
    assert demo["_elapsed"] < 10
    assert [s["source"] for s in demo["scenarios"]] == [
        "examples/http-proxy.env",
        "examples/https-proxy.env",
    ]
    for scenario in demo["scenarios"]:
        assert scenario["error"] is None
        assert {r["adapter"] for r in scenario["requests"]} == {*INSTALLED, "socket"}
        assert all(r["as_expected"] for r in scenario["requests"])


def test_demo_never_resolves_a_name_outside_loopback(demo: dict[str, Any]) -> None:
    # What reached the real resolver: only addresses (AI_NUMERICHOST), never a name.
    names = [host for host in demo["_lookups"] if not host.replace(".", "").isdigit()]
    assert [n for n in names if n not in {"127.0.0.1", "::1", "None"}] == []


def test_demo_shows_how_it_pointed_the_examples_at_the_recording_proxy(
    demo: dict[str, Any],
) -> None:
    http, https = demo["scenarios"]
    (proxies,) = [r for r in http["rewrites"] if "HTTP_PROXY" in r["variables"]]
    assert proxies["was"] == "http://my-proxy:3128"
    assert proxies["now"].startswith("http://127.0.0.1:")
    assert set(proxies["variables"]) == {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "GRPC_PROXY",
        "grpc_proxy",
    }
    assert http["kept"] == ["NO_PROXY", "no_proxy"]
    rewrites = {r["variables"][0]: r for r in https["rewrites"]}
    assert rewrites["HTTP_PROXY"]["was"] == "https://my-proxy:3129"
    assert rewrites["HTTP_PROXY"]["now"].startswith("https://127.0.0.1:")
    assert rewrites["NODE_EXTRA_CA_CERTS"]["was"] == "/opt/carto/certs/proxy-ca.crt"
    # CARTO's HTTPS example as written: the proxy's certificate is not verified.
    assert "NODE_TLS_REJECT_UNAUTHORIZED" not in rewrites
    assert https["kept"] == ["NO_PROXY", "no_proxy", "NODE_TLS_REJECT_UNAUTHORIZED"]
    assert "not the TLS proxy's" in rewrites["NODE_EXTRA_CA_CERTS"]["why"]
    assert "proxy hop is NOT verified" in https["tls"]
    assert "the proxy is plain http://" in http["tls"]


def test_demo_unverified_proxy_hop_still_verifies_origins(demo: dict[str, Any]) -> None:
    """Through the TLS proxy whose CA is not trusted, requests succeed (the hop is not
    verified) but an origin whose CA is not trusted is refused (origins still are)."""
    http, https = (requests_by_label(s) for s in demo["scenarios"])
    if "httpx" not in INSTALLED:
        pytest.skip("httpx is not installed")
    for scenario in (http, https):
        untrusted = scenario["httpx GET https://untrusted.example.com/"]
        assert untrusted["expect"] == "refused"
        assert untrusted["result"].startswith("refused: certificate verify failed")
        assert untrusted["proxy_saw"] == ["CONNECT untrusted.example.com:443"]
        assert untrusted["as_expected"] is True
    assert https["httpx GET https://auth.carto.com/"]["result"] == "200"
    assert https["httpx GET https://auth.carto.com/"]["proxy_saw"] == ["CONNECT auth.carto.com:443"]


def test_demo_has_warehouse_rows_that_go_direct_and_the_firewall_must_allow(
    demo: dict[str, Any],
) -> None:
    for scenario in demo["scenarios"]:
        requests = requests_by_label(scenario)
        rows = {
            "socket connect db.internal:5432 (PostgreSQL)": ("tcp_bypass", "connected"),
            "socket connect examplecluster:5439 (Redshift)": ("tcp_bypass", "connected"),
            "httpx GET https://dbc-a1b2c3d4-e5f6.cloud.databricks.com/": (
                "warehouse_unsupported",
                "200",
            ),
        }
        for label, (rule, result) in rows.items():
            if label.split()[0] not in ("socket", *INSTALLED):
                continue
            row = requests[label]
            assert (row["route"]["action"], row["route"]["rule"]) == ("direct", rule), label
            assert row["route"]["needs_direct_egress"] is True
            assert row["allow_on"] == "firewall"
            assert (row["went_direct"], row["proxy_saw"], row["result"]) == (True, [], result)
        postgres = requests["socket connect db.internal:5432 (PostgreSQL)"]["route"]
        assert postgres["target"] == {"protocol": "tcp", "host": "db.internal", "port": 5432}


def test_demo_shows_each_scenario_s_check(demo: dict[str, Any]) -> None:
    http, https = demo["scenarios"]
    assert http["check"]["summary"] == (
        "0 error(s), 1 warning(s), 0 info; 3 portability finding(s) (0 warning(s))."
    )
    codes = [d["code"] for d in https["check"]["diagnostics"]]
    assert "CP307" in codes  # the CA file is checked where CARTO runs
    assert "CP305" not in codes
    assert "CP301" in codes  # the unverified proxy hop
    assert [f["code"] for f in https["check"]["portability"]].count("CP525") == 2


def test_demo_routes_follow_carto_s_rules(demo: dict[str, Any]) -> None:
    http, https = (requests_by_label(s) for s in demo["scenarios"])
    for label, request in http.items():
        direct = ("dropbox", "filestack", "databricks", "(PostgreSQL)", "(Redshift)")
        expected = "direct" if any(name in label for name in direct) else "proxy"
        assert request["route"]["action"] == expected, label
    if "grpc" in INSTALLED:
        grpc = https["grpc Ping bigquerystorage.googleapis.com:443"]
        assert grpc["route"]["rule"] == "grpc_https_unsupported"
        assert grpc["result"] == "pong"
        assert grpc["proxy_saw"] == []
        assert http["grpc Ping bigquerystorage.googleapis.com:443"]["proxy_saw"] == [
            "CONNECT bigquerystorage.googleapis.com:443"
        ]
    if "snowflake" in INSTALLED:
        snowflake = https["snowflake log in to xy12345"]
        assert snowflake["route"]["rule"] == "warehouse_https_unsupported"
        assert snowflake["route"]["needs_direct_egress"] is True
        assert snowflake["went_direct"] is True
        assert snowflake["result"] == "logged in"


def test_demo_proxy_log_holds_exactly_the_proxied_requests(demo: dict[str, Any]) -> None:
    for scenario in demo["scenarios"]:
        proxied = [r for r in scenario["requests"] if r["route"]["action"] == "proxy"]
        log = [f"{e['method']} {e['target']}" for e in scenario["proxy_log"]]
        assert sorted(log) == sorted(saw for r in proxied for saw in r["proxy_saw"])
        assert all(entry["status"] == 200 for entry in scenario["proxy_log"])


def test_demo_skips_an_adapter_whose_library_is_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def without_snowflake(name: str, package: str | None = None) -> Any:
        if name == "carto_proxy.adapters.snowflake":
            raise MissingExtraError("snowflake", "snowflake")
        if name == "carto_proxy.adapters.bigquery":
            raise ModuleNotFoundError(name=name)
        return real(name, package)

    monkeypatch.setattr(_requests.importlib, "import_module", without_snowflake)
    code = main(["demo"], environ={})
    out = capsys.readouterr().out
    assert code == 0
    assert "Skipped the snowflake adapter: snowflake is not installed" in out
    assert "pip install 'carto-proxy[snowflake]'" in out
    assert "Skipped the bigquery adapter: this version of carto-proxy has no such adapter" in out
    assert "snowflake  log in" not in out


def test_demo_on_an_env_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        'HTTPS_PROXY="http://corp-proxy:8080"\nhttps_proxy="http://corp-proxy:8080"\n'
        'NO_PROXY=".googleapis.com"\nno_proxy=".googleapis.com"\n'
    )
    code, document = run_demo(capsys, "--env-file", str(env_file))
    assert code == 0, document
    (scenario,) = document["scenarios"]
    requests = requests_by_label(scenario)
    assert requests["httpx GET https://auth.carto.com/"]["route"]["action"] == "proxy"
    storage = requests["urllib3 GET https://storage.googleapis.com/"]
    assert storage["route"]["matched_entry"] == ".googleapis.com"
    assert storage["went_direct"] is True
    # No HTTP_PROXY: plain http:// goes direct, with no proxy for the scheme.
    assert requests["urllib3 GET http://tools.google.com/"]["route"]["rule"] == (
        "no_proxy_configured"
    )


def test_demo_reports_a_refused_configuration_and_sends_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("https_proxy=http://user:s3cret@corp-proxy:8080\n")
    code = main(["demo", "--env-file", str(env_file)], environ={})
    out = capsys.readouterr().out
    assert code == 1
    assert "check --ca-elsewhere: 1 error(s)" in out
    assert "CP106" in out
    assert "The configuration is refused" in out
    assert "the demo sends nothing" in out
    assert "Done in" in out
    assert "the configuration is refused, so nothing was sent." in out
    assert "SOME REQUESTS" not in out
    assert "did NOT" not in out
    assert "ADAPTER" not in out  # no request table
    assert "s3cret" not in out
    code, document = run_demo(capsys, "--env-file", str(env_file))
    (scenario,) = document["scenarios"]
    assert (code, document["ok"]) == (1, False)
    assert (scenario["requests"], scenario["proxy_log"], scenario["rewrites"]) == ([], [], [])
    assert "password" in scenario["error"]
    assert next(d["code"] for d in scenario["check"]["diagnostics"]) == "CP106"


def test_demo_verifies_a_tls_proxy_when_the_settings_say_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HTTPS_PROXY=https://p:3129\nhttps_proxy=https://p:3129\n")
    code, document = run_demo(capsys, "--env-file", str(env_file))
    assert code == 0, document
    (scenario,) = document["scenarios"]
    assert "proxy hop is verified" in scenario["tls"]
    (ca,) = [r for r in scenario["rewrites"] if r["variables"] == ["NODE_EXTRA_CA_CERTS"]]
    assert "and the TLS proxy's CA" in ca["why"]


def test_demo_falls_back_to_the_packaged_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "site" / "data" / "examples"
    packaged.mkdir(parents=True)
    (packaged / "http-proxy.env").write_text('HTTPS_PROXY="http://packaged:1"\n')
    monkeypatch.setattr(_scenarios, "REPOSITORY_EXAMPLES", tmp_path / "no-checkout")
    monkeypatch.setattr(_scenarios.resources, "files", lambda package: tmp_path / "site")
    shown, text = _scenarios.example("http-proxy.env")
    assert "packaged" in shown
    assert "http://packaged:1" in text


def test_demo_as_a_subprocess() -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "carto_proxy", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15  # the demo itself reports < 10 s; plus start-up
    assert "every request went the way its route says" in result.stdout
    assert "The recording proxy's own log:" in result.stdout
