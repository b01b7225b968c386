"""carto-proxy probe against a real Squid and local TLS origins (never the real domains)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from carto_proxy.cli import main
from tests.cli.helpers import both
from tests.support.names import API_HOST, DENIED_HOST, DIRECT_HOST, LOOPBACK
from tests.support.origins import Origins
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS
from tests.support.squid import Squid, SquidLog

pytestmark = pytest.mark.integration


def through(proxy_url: str, ca: os.PathLike[str] | str, **extra: str) -> dict[str, str]:
    return both(http_proxy=proxy_url, https_proxy=proxy_url, **extra) | {
        "NODE_EXTRA_CA_CERTS": os.fspath(ca)
    }


def probe(
    capsys: pytest.CaptureFixture[str], environ: Mapping[str, str], *argv: str
) -> tuple[int, dict[str, Any]]:
    code = main(["probe", "--json", "--timeout", "5", *argv], environ=environ)
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never says anything."""
    with socket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.mark.parametrize("tls", [False, True], ids=["http-proxy", "https-proxy"])
def test_reachable_through_the_proxy(
    capsys: pytest.CaptureFixture[str],
    squid: Squid,
    squid_log: SquidLog,
    origins: Origins,
    pki: PKI,
    tls: bool,
) -> None:
    proxy_url, port = (
        (squid.https_url, squid.https_port) if tls else (squid.http_url, squid.http_port)
    )
    host = f"{API_HOST}:{origins.https.port}"
    code, document = probe(capsys, through(proxy_url, pki.bundle_path), "--host", host)
    assert code == 0, document
    (result,) = document["results"]
    assert result["result"] == "reachable"
    assert (result["route"]["action"], result["route"]["proxy"]) == ("proxy", proxy_url)
    steps = {"connect", "connect_response", "tls"} | ({"proxy_tls"} if tls else set())
    assert set(result["timings_ms"]) == steps
    assert API_HOST in result["certificate"]["names"]
    entry = squid_log.wait_for_host(API_HOST, method="CONNECT")
    assert (entry.status, entry.listener_port) == (200, port)
    assert document["summary"]["reachable"] == 1


def test_refused_by_the_proxy_reports_the_status(
    capsys: pytest.CaptureFixture[str], squid: Squid, origins: Origins, pki: PKI
) -> None:
    host = f"{DENIED_HOST}:{origins.https.port}"
    code, document = probe(capsys, through(squid.http_url, pki.bundle_path), "--host", host)
    assert code == 1
    (result,) = document["results"]
    assert (result["result"], result["status"]) == ("refused", 403)
    assert (result["hop"], result["step"]) == ("proxy", "connect_response")
    assert "403" in result["error"]


def test_untrusted_origin_names_the_hop_and_the_certificate(
    capsys: pytest.CaptureFixture[str], squid: Squid, origins: Origins, pki: PKI
) -> None:
    host = f"{API_HOST}:{origins.untrusted.port}"
    code, document = probe(capsys, through(squid.http_url, pki.bundle_path), "--host", host)
    assert code == 1
    (result,) = document["results"]
    assert (result["result"], result["hop"], result["step"]) == ("tls_failure", "origin", "tls")
    assert "issuer" in result["error"] or "certificate" in result["error"]
    certificate = result["certificate"]
    untrusted_ca = pki.untrusted_ca.cert_pem.bytes().decode()
    assert certificate is not None
    assert certificate["issuer"].split("#")[1] in untrusted_ca or certificate["issuer"]
    assert API_HOST in certificate["names"]
    assert len(certificate["sha256"]) == 64


def test_tls_proxy_without_its_ca_fails_at_the_proxy_hop(
    capsys: pytest.CaptureFixture[str], squid: Squid, origins: Origins, pki: PKI
) -> None:
    host = f"{API_HOST}:{origins.https.port}"
    environ = through(squid.https_url, pki.origin_ca_path)  # the origin CA only
    code, document = probe(capsys, environ, "--host", host)
    assert code == 1
    (result,) = document["results"]
    assert (result["result"], result["hop"], result["step"]) == (
        "tls_failure",
        "proxy",
        "proxy_tls",
    )
    assert "localhost" in result["certificate"]["names"]  # Squid's certificate, not the origin's


def test_unverified_tls_proxy_is_accepted_when_told(
    capsys: pytest.CaptureFixture[str], squid: Squid, origins: Origins, pki: PKI
) -> None:
    host = f"{API_HOST}:{origins.https.port}"
    environ = through(squid.https_url, pki.origin_ca_path, NODE_TLS_REJECT_UNAUTHORIZED="0")
    environ["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
    code, document = probe(capsys, environ, "--host", host)
    assert code == 0, document


def test_direct_route_connects_without_the_proxy(
    capsys: pytest.CaptureFixture[str],
    squid: Squid,
    squid_log: SquidLog,
    origins: Origins,
    pki: PKI,
    fake_dns: FakeDNS,
) -> None:
    environ = through(squid.http_url, pki.bundle_path) | both(no_proxy=DIRECT_HOST)
    code, document = probe(capsys, environ, "--host", f"{DIRECT_HOST}:{origins.https.port}")
    assert code == 0, document
    (result,) = document["results"]
    assert result["route"]["rule"] == "no_proxy"
    assert result["result"] == "reachable"
    assert fake_dns.resolved(DIRECT_HOST)
    assert squid_log.seen(DIRECT_HOST) == []


def test_direct_route_to_a_closed_port_fails_to_connect(
    capsys: pytest.CaptureFixture[str], pki: PKI
) -> None:
    with socket.socket() as probe_port:
        probe_port.bind((LOOPBACK, 0))
        port = probe_port.getsockname()[1]  # closed once the block ends
    code, document = probe(capsys, {}, "--host", f"{LOOPBACK}:{port}")
    assert code == 1
    (result,) = document["results"]
    assert (result["result"], result["hop"], result["step"]) == (
        "connect_failed",
        "origin",
        "connect",
    )


def test_a_silent_proxy_times_out_at_the_connect_answer(
    capsys: pytest.CaptureFixture[str], silent_listener: int, pki: PKI
) -> None:
    environ = through(f"http://{LOOPBACK}:{silent_listener}", pki.bundle_path)
    code = main(
        ["probe", "--json", "--timeout", "0.3", "--host", f"{API_HOST}:443"], environ=environ
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    (result,) = document["results"]
    assert (result["result"], result["step"]) == ("timeout", "connect_response")
    assert result["elapsed_ms"] < 2000


def test_egress_list_through_a_squid_that_denies_them_all(
    capsys: pytest.CaptureFixture[str],
    squid_factory: Any,
    pki: PKI,
    fake_dns: FakeDNS,
) -> None:
    domains = [
        ".carto.com",
        ".googleapis.com",
        ".google.com",
        ".gcr.io",
        ".launchdarkly.com",
        ".mapbox.com",
        ".tomtom.com",
        ".hereapi.com",
        ".docker.io",
    ]
    proxy = squid_factory(deny_domains=domains)
    environ = through(proxy.http_url, pki.bundle_path)
    code = main(["probe", "--json", "--list", "legacy", "--concurrency", "4"], environ=environ)
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    results = {r["target"]: r for r in document["results"]}
    assert results["auth.carto.com"]["result"] == "refused"
    assert results["auth.carto.com"]["status"] == 403
    for wildcard in ("*.snowflakecomputing.com", "*.amazonaws.com", "*.blob.core.windows.net"):
        assert results[wildcard]["result"] == "not_probed"
        assert results[wildcard]["route"] is None
    probed = [r for r in document["results"] if r["result"] != "not_probed"]
    assert {r["result"] for r in probed} == {"refused"}
    assert len(probed) == len({r["target"] for r in probed})  # each host probed once
    assert fake_dns.lookups == []  # everything went through the proxy: no local lookup
    connects = {e.host for e in proxy.access_log() if e.method == "CONNECT"}
    assert "auth.carto.com" in connects


def test_http_targets_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--host", "http://x.example"], environ={}) == 2
    assert main(["probe", "--host", "http://[::1"], environ={}) == 2
    assert main(["probe", "--timeout", "0"], environ={}) == 2


def test_table_output_shows_hop_and_certificate(
    capsys: pytest.CaptureFixture[str], squid: Squid, origins: Origins, pki: PKI
) -> None:
    hosts = f"{API_HOST}:{origins.https.port},{API_HOST}:{origins.untrusted.port}"
    code = main(["probe", "--host", hosts], environ=through(squid.http_url, pki.bundle_path))
    out = capsys.readouterr().out
    assert code == 1
    assert "reachable" in out
    assert "origin hop, tls: certificate refused" in out
    assert "certificate names:" in out
    assert "1 reachable, 1 tls failure" in out


def test_probe_as_a_subprocess(origins: Origins, pki: PKI) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NODE_EXTRA_CA_CERTS"] = str(pki.origin_ca_path)
    result = subprocess.run(
        [sys.executable, "-m", "carto_proxy", "probe", "--json", "--host", origins.https.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["results"]
    assert item["result"] == "reachable"
    assert item["route"]["rule"] == "no_proxy_configured"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    squid: Squid,
    origins: Origins,
    pki: PKI,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    hosts = f"{API_HOST}:{origins.https.port},{DENIED_HOST}:{origins.https.port}"
    code = main(["probe", "--host", hosts], environ=through(squid.http_url, pki.bundle_path))
    assert code == 1
    progress = terminal.getvalue()
    assert "\rprobing: 1/2 done" in progress
    assert "\rprobing: 2/2 done" in progress
    assert progress.endswith("\r")  # the line is wiped before the table is printed
    assert "probing:" not in capsys.readouterr().out
