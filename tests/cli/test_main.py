"""The carto-proxy shell: usage, exit statuses, output hygiene, the network left alone, and
``python -m carto_proxy`` as a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carto_proxy.cli._shared import scrub
from tests.cli.helpers import (
    HELM,
    HTTP_ENV,
    HTTP_PROXY,
    SNOWFLAKE,
    both,
    run_subprocess,
)


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


# What --help must not load: the probe engine (ssl, socket, a thread pool), the demo's
# servers, the testing kit, the adapters and every client library, the egress data.
NOT_FOR_HELP = (
    "carto_proxy.cli._probe._engine",
    "carto_proxy.cli._probe._x509",
    "carto_proxy.cli._demo._requests",
    "carto_proxy.cli._demo._scenarios",
    "carto_proxy.cli._demo._standins",
    "carto_proxy.cli._demo._report",
    "carto_proxy._egress",
    "carto_proxy.testing",
    "carto_proxy.adapters",
    "ssl",
    "socket",
    "concurrent.futures",
    "unittest.mock",
    "tempfile",
    "dotenv",
    "httpx",
    "urllib3",
    "requests",
    "grpc",
    "google",
    "snowflake",
    "trustme",
    "yaml",
)


@pytest.mark.parametrize("argv", [["--help"], ["probe", "--help"], ["demo", "--help"]])
def test_help_loads_no_engine_and_no_client_library(argv: list[str]) -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from carto_proxy.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    status = main({argv!r}, environ={{}})\n"
        "loaded = [name for name in json.loads(sys.argv[1]) if name in sys.modules]\n"
        "print(json.dumps({'status': status, 'help': out.getvalue(), 'loaded': loaded}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(NOT_FOR_HELP)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    document = json.loads(result.stdout)
    assert document["status"] == 0
    assert "usage: carto-proxy" in document["help"]
    assert document["loaded"] == []


def test_scrub_masks_any_url_password() -> None:
    assert (
        scrub("see http://u:pw@h:1 and https://x:y@z") == "see http://u:***@h:1 and https://x:***@z"
    )
    # A password may hold '/', so an '@' anywhere after a scheme masks what comes before it:
    # too much, for an '@' in a path, but never a secret shown.
    assert (
        scrub("'https://alice:S3cret/PW@api.example.com/'")
        == "'https://alice:***@api.example.com/'"
    )
    assert "S3cret" not in scrub("http://host:3128/x@y and alice:S3cret#1@db.corp")


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
