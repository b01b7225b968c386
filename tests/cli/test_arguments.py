"""Hostile command-line arguments: paths that cannot be read and numbers out of range.

Each is a usage error (exit status 2) that says what is wrong, never a traceback (issue 15
B11/B12, issue 16 item 2). Everything here stays on loopback: the one probe that runs
connects to a closed port on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import HTTP_ENV, run_subprocess

LONG_NAME = "a" * 300  # one component longer than NAME_MAX (255)


def _long(tmp: Path) -> str:
    return str(tmp / LONG_NAME)


def _very_long(tmp: Path) -> str:
    return str(tmp / "/".join(["b" * 200] * 25))  # longer than PATH_MAX (4096)


def _through_a_file(tmp: Path) -> str:
    (tmp / "plain").write_text("x")
    return str(tmp / "plain" / ".env")


def _directory(tmp: Path) -> str:
    return str(tmp)


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "fifo")  # opening it for reading would block forever
    return str(tmp / "fifo")


def _loop(tmp: Path) -> str:
    (tmp / "loop").symlink_to(tmp / "loop")
    return str(tmp / "loop")


def _missing(tmp: Path) -> str:
    return str(tmp / "nope.env")


def _nul(tmp: Path) -> str:
    return f"{tmp}/x\0.env"


PATHS: dict[str, tuple[Callable[[Path], str], str]] = {
    "name-too-long": (_long, "File name too long (3"),
    "path-too-long": (_very_long, "File name too long (5"),
    "through-a-file": (_through_a_file, "Not a directory"),
    "directory": (_directory, "is a directory"),
    "fifo": (_fifo, "is not a regular file"),
    "symlink-loop": (_loop, "Too many levels of symbolic links"),
    "missing": (_missing, "no such file"),
    "nul-byte": (_nul, "NUL byte"),
}

# Every command, with what it needs besides the source to get as far as reading it.
COMMANDS = {
    "check": ["check"],
    "route": ["route", "auth.carto.com"],
    "egress": ["egress"],
    "env": ["env"],
    "probe": ["probe", "--host", "127.0.0.1:1"],
    "demo": ["demo"],
    "audit": ["audit", "--", sys.executable, "-c", "pass"],
}


def assert_usage_error(result: Any, *expected: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    for text in expected:
        assert text in result.err


@pytest.mark.parametrize("kind", PATHS)
@pytest.mark.parametrize("option", ["--env-file", "--helm-values"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_source_path_that_cannot_be_read_is_a_usage_error(
    cli: Any, tmp_path: Path, command: str, option: str, kind: str
) -> None:
    make, problem = PATHS[kind]
    argv = COMMANDS[command]
    separator = argv.index("--") if "--" in argv else len(argv)
    result = cli(*argv[:separator], option, make(tmp_path), *argv[separator:])
    assert_usage_error(result, f"carto-proxy {command}: {option} ", problem)


@pytest.mark.parametrize("kind", [k for k in PATHS if k != "missing"])
@pytest.mark.parametrize("output", ["env", "helm"])
def test_env_ca_that_cannot_be_read_is_a_usage_error(
    cli: Any, tmp_path: Path, kind: str, output: str
) -> None:
    make, problem = PATHS[kind]
    argv = ["env", "--proxy", "http://p:3128", "--format", output, "--ca", make(tmp_path)]
    assert_usage_error(cli(*argv), "--ca ", problem)


def test_env_ca_that_only_exists_where_carto_runs_is_named_with_a_note(cli: Any) -> None:
    result = cli("env", "--proxy", "http://p:3128", "--ca", "/opt/carto/certs/proxy-ca.crt")
    assert result.code == 0
    assert "NODE_EXTRA_CA_CERTS=/opt/carto/certs/proxy-ca.crt" in result.out
    assert "does not exist here" in result.err


def test_a_long_path_in_the_file_is_the_file_s_finding_not_a_crash(
    cli: Any, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"HTTPS_PROXY=http://p:3128\nNODE_EXTRA_CA_CERTS={_long(tmp_path)}\n")
    result = cli("check", "--json", "--env-file", str(env_file))
    assert result.code == 1
    assert "CP305" in [d["code"] for d in result.json()["diagnostics"]]
    converted = cli("env", "--env-file", str(env_file))
    assert converted.code == 0  # named as written: CARTO reads it where it runs
    assert "does not exist here" in converted.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.env"
    secret.write_text("HTTPS_PROXY=http://p:3128\n")
    secret.chmod(0)
    assert_usage_error(cli("check", "--env-file", str(secret)), "Permission denied")


def test_a_long_path_is_a_usage_error_in_a_subprocess(tmp_path: Path) -> None:
    result = run_subprocess("check", "--env-file", _long(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "File name too long" in result.stderr
    assert "Traceback" not in result.stderr


# --- numbers ----------------------------------------------------------------------------------

BAD_TIMEOUTS = ["nan", "NaN", "inf", "-inf", "1e309", "1e300", "3600.001", "0", "-0", "-1", "x", ""]
BAD_CONCURRENCY = ["0", "-1", "65", "1e3", "nan", "2.5", str(10**30), "9" * 4000, "9" * 5000]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_probe_timeout_out_of_range_is_a_usage_error(cli: Any, value: str) -> None:
    result = cli("probe", "--host", "127.0.0.1:1", f"--timeout={value}")
    assert_usage_error(result, "--timeout", "0 < value <= 3600")


@pytest.mark.parametrize("value", BAD_CONCURRENCY)
def test_probe_concurrency_out_of_range_is_a_usage_error(cli: Any, value: str) -> None:
    result = cli("probe", "--host", "127.0.0.1:1", f"--concurrency={value}")
    assert_usage_error(result, "--concurrency", "an integer from 1 to 64")


@pytest.mark.parametrize(("option", "value"), [("--timeout", "3600"), ("--concurrency", "64")])
def test_probe_accepts_the_bounds(cli: Any, option: str, value: str) -> None:
    # A closed loopback port: refused at once, so the probe runs and reports it (exit 1).
    result = cli("probe", "--json", "--host", "127.0.0.1:1", option, value)
    assert result.code == 1, result.err
    assert result.json()["summary"]["connect_failed"] == 1


def test_probe_non_finite_timeout_is_a_usage_error_in_a_subprocess() -> None:
    result = run_subprocess("probe", "--host", "127.0.0.1:1", "--timeout=inf")
    assert result.returncode == 2, result.stderr
    assert "0 < value <= 3600" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_source_file_still_reads(cli: Any) -> None:
    assert cli("check", "--env-file", str(HTTP_ENV)).code == 0
