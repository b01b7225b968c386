"""carto-proxy env --portable: NO_PROXY written so every tool reads it as carto_proxy does.

The property: for generated NO_PROXY lists, ``check`` of what ``env --portable`` writes has
exactly the portability findings ``env --portable`` lists as not portable, no more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from carto_proxy import ProxyConfig
from carto_proxy.cli import main
from tests.cli.helpers import HTTP_ENV, HTTPS_ENV, both, run_subprocess
from tests.test_portable import lists

PROXY = both(http_proxy="http://my-proxy:3128", https_proxy="http://my-proxy:3128")


def test_env_portable_rewrites_and_says_what_it_could_not(cli: Any) -> None:
    no_proxy = "*.corp.example,[::1],localhost,10.0.0.0/8,a b"
    result = cli("env", "--portable", "--proxy", "http://my-proxy:3128", "--no-proxy", no_proxy)
    assert result.code == 0
    written = "corp.example,.corp.example,::1,localhost,10.0.0.0/8"
    assert f'NO_PROXY="{written}"\nno_proxy="{written}"\n' in result.out
    err = result.err.splitlines()
    assert (
        "note: --portable wrote NO_PROXY entry '*.corp.example' as 'corp.example,.corp.example' "
        "(CP501; curl, Python urllib, Python requests, httpx and gRPC read it otherwise)"
    ) in err
    assert "note: --portable wrote NO_PROXY entry '[::1]' as '::1' (CP508;" in result.err
    assert "note: --portable dropped NO_PROXY entry 'a b' (CP201): carto_proxy ignores it" in (
        result.err
    )
    not_portable = [line for line in err if line.startswith("not portable:")]
    assert [line.split(" (")[0] for line in not_portable] == [
        "not portable: no_proxy entry '10.0.0.0/8'",
        "not portable: no_proxy entry '::1'",
    ]
    assert "Python urllib, Node proxy-from-env (axios) and Node undici" in not_portable[1]


def test_env_portable_json_holds_the_variables_the_rewrites_and_what_is_left(cli: Any) -> None:
    result = cli("env", "--portable", "--json", "--env-file", str(HTTPS_ENV))
    assert result.code == 0, result.err
    document = result.json()
    assert set(document) == {"variables", "rewrites", "not_portable"}
    assert document["variables"]["NO_PROXY"] == (
        "mega.io,.mega.io,dropbox.com,.dropbox.com,filestack.com,.filestack.com"
    )
    assert document["variables"]["NODE_TLS_REJECT_UNAUTHORIZED"] == "0"  # as written
    assert document["rewrites"][0] == {
        "variable": "NO_PROXY",
        "entry": "mega.io",
        "now": ["mega.io", ".mega.io"],
        "codes": ["CP503"],
        "tools": ["proxy-from-env"],
        "why": document["rewrites"][0]["why"],
    }
    # An https:// proxy is what urllib cannot use: no spelling of it changes that.
    assert [(f["code"], f["variable"]) for f in document["not_portable"]] == [
        ("CP525", "http_proxy"),
        ("CP525", "https_proxy"),
    ]
    without = cli("env", "--json", "--env-file", str(HTTPS_ENV)).json()
    assert without == document["variables"] | {"NO_PROXY": without["NO_PROXY"]} | {
        "no_proxy": without["no_proxy"]
    }  # without --portable: the variables alone, as before


def test_env_portable_helm_values_read_back_without_portability_findings(
    cli: Any, tmp_path: Path
) -> None:
    result = cli("env", "--portable", "--format", "helm", "--env-file", str(HTTP_ENV))
    assert result.code == 0, result.err
    values = tmp_path / "values.yaml"
    values.write_text(result.out)
    config = ProxyConfig.from_helm_values(values)
    assert {"svc.cluster.local", ".svc.cluster.local", "mega.io", ".mega.io"} <= set(
        config.no_proxy.entries
    )
    check = cli("check", "--json", "--helm-values", str(values)).json()
    assert [f["code"] for f in check["portability"] if f["code"] < "CP520"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lists)
def test_check_of_the_output_finds_only_what_env_portable_lists(no_proxy: str) -> None:
    import contextlib
    import io
    import json
    import tempfile

    environ = PROXY | both(no_proxy=no_proxy)

    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(list(argv), environ=env if env is not None else {})
        return code, out.getvalue()

    code, block = run("env", "--portable", env=environ)
    assert code == 0
    document = json.loads(run("env", "--portable", "--json", env=environ)[1])
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp, ".env")
        env_file.write_text(block)
        code, report = run("check", "--json", "--env-file", str(env_file))
        # carto_proxy reads the file as the configuration --portable meant.
        read_back = ProxyConfig.from_env_file(env_file)
    assert read_back == ProxyConfig.from_env(document["variables"])
    found = json.loads(report)["portability"]
    key = ("code", "variable", "entry")
    assert sorted(tuple(f[k] for k in key) for f in found) == sorted(
        tuple(f[k] for k in key) for f in document["not_portable"]
    )


def test_env_portable_in_a_subprocess() -> None:
    result = run_subprocess("env", "--portable", "--env-file", str(HTTP_ENV))
    assert result.returncode == 0, result.stderr
    written = "localhost,mega.io,.mega.io,dropbox.com,.dropbox.com,filestack.com,.filestack.com"
    assert f'NO_PROXY="{written}"' in result.stdout
    assert "not portable" not in result.stderr
