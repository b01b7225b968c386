"""carto-proxy audit -- COMMAND: real Python programs, and the Python processes they start.

The programs run as child processes against the session's loopback origins. Each maps the
test names to 127.0.0.1 with the kit's DirectGuard (which refuses every other name), so no
lookup reaches a real resolver even though the audit only reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from carto_proxy.cli import main
from tests.support.names import API_HOST, DIRECT_HOST
from tests.support.origins import Origins

pytestmark = pytest.mark.integration

GUARD = f"""\
import subprocess, sys, socket, urllib.request
from carto_proxy.testing import DirectGuard
DirectGuard({{{API_HOST!r}: "127.0.0.1", {DIRECT_HOST!r}: "127.0.0.1"}}).__enter__()
"""


class Result(NamedTuple):
    code: int
    out: str
    err: str


Audit = Callable[..., Result]


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """The configuration judged by: a dead proxy (nothing here uses it), DIRECT_HOST direct."""
    path = tmp_path / "carto.env"
    path.write_text(
        f"HTTP_PROXY=http://127.0.0.1:9\nHTTPS_PROXY=http://127.0.0.1:9\nNO_PROXY={DIRECT_HOST}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def run_audit(env_file: Path, capfd: pytest.CaptureFixture[str]) -> Audit:
    """Run ``carto-proxy audit --env-file ENV [options] -- COMMAND`` in-process."""

    def run(*command: str, options: tuple[str, ...] = (), environ: Any = None) -> Result:
        argv = ["audit", "--env-file", str(env_file), *options, "--", *command]
        code = main(argv, environ=dict(os.environ) if environ is None else environ)
        captured = capfd.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(GUARD + textwrap.dedent(body), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    """The line number of the first line of *path* holding *text*."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def test_reports_each_host_with_the_line_that_made_it_in_every_python_process(
    run_audit: Audit, tmp_path: Path, origins: Origins
) -> None:
    port = origins.http.port
    child = script(
        tmp_path,
        "child.py",
        f"""\
        socket.getaddrinfo({API_HOST!r}, 443)  # grandchild
        """,
    )
    program = script(
        tmp_path,
        "app.py",
        f"""\
        for _ in range(2):
            urllib.request.urlopen("http://{API_HOST}:{port}/cli-audit", timeout=5).read()
        urllib.request.urlopen("http://{DIRECT_HOST}:{port}/cli-direct", timeout=5).read()
        subprocess.run([sys.executable, {str(child)!r}], check=True)
        print("app done")
        """,
    )
    result = run_audit(sys.executable, str(program), options=("--strict",))
    assert result.code == 1  # --strict: the program exited 0, with violations
    assert "app done" in result.out
    assert f"2 Python processes audited; {os.path.basename(sys.executable)} exited 0" in result.err
    rows = [line.split() for line in result.err.splitlines() if API_HOST in line]
    assert [(row[0], row[1], row[2], row[-1]) for row in rows] == [
        (f"{API_HOST}:{port}", "resolve", "2", f"{program}:{line_of(program, '/cli-audit')}"),
        (f"{API_HOST}:443", "resolve", "1", f"{child}:{line_of(child, 'grandchild')}"),
    ]
    assert DIRECT_HOST not in result.err
    assert sum(1 for r in origins.http.requests if r.path == "/cli-audit") == 2


def test_json_report(run_audit: Audit, tmp_path: Path) -> None:
    program = script(tmp_path, "app.py", f"socket.getaddrinfo({API_HOST!r}, 443)\n")
    result = run_audit(sys.executable, str(program), options=("--json",))
    assert result.code == 0
    report = json.loads(result.out)
    assert (report["status"], report["processes"]) == (0, 1)
    (violation,) = report["violations"]
    assert violation | {"pids": None} == {
        "host": API_HOST,
        "port": 443,
        "kind": "resolve",
        "where": f"{program}:{line_of(program, 'getaddrinfo')}",
        "count": 1,
        "proxy": "http://127.0.0.1:9",
        "variable": "HTTPS_PROXY",
        "rule": "proxy",
        "pids": None,
    }
    assert len(violation["pids"]) == 1


@pytest.mark.parametrize("strict", [False, True])
def test_the_exit_status_is_the_programs(run_audit: Audit, tmp_path: Path, strict: bool) -> None:
    program = script(tmp_path, "app.py", f"socket.getaddrinfo({API_HOST!r}, 443)\nsys.exit(3)\n")
    options = ("--strict",) if strict else ()
    assert run_audit(sys.executable, str(program), options=options).code == 3


def test_a_clean_program_exits_0_even_when_strict(run_audit: Audit, tmp_path: Path) -> None:
    program = script(tmp_path, "app.py", f"socket.getaddrinfo({DIRECT_HOST!r}, 443)\n")
    result = run_audit(sys.executable, str(program), options=("--strict",))
    assert result.code == 0
    python = os.path.basename(sys.executable)
    assert f"nothing went around the proxy (1 Python process audited; {python} exited 0)" in (
        result.err
    )


def test_a_program_that_is_not_python_is_said_so(run_audit: Audit) -> None:
    result = run_audit("sh", "-c", "exit 0")
    assert result.code == 0
    assert "no Python process was audited" in result.err


def test_an_existing_sitecustomize_still_runs(run_audit: Audit, tmp_path: Path) -> None:
    theirs = tmp_path / "site"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import builtins\nbuiltins.THEIRS = True\n")
    program = script(
        tmp_path,
        "app.py",
        f"import builtins\nassert builtins.THEIRS\nsocket.getaddrinfo({API_HOST!r}, 443)\n",
    )
    environ = {**os.environ, "PYTHONPATH": str(theirs)}
    result = run_audit(sys.executable, str(program), options=("--json",), environ=environ)
    assert result.code == 0, result.err
    assert [v["host"] for v in json.loads(result.out)["violations"]] == [API_HOST]


@pytest.mark.parametrize(
    ("command", "message"),
    [((), "give the program to run after --"), (("/nonexistent/program",), "cannot run")],
)
def test_no_program_is_a_usage_error(
    run_audit: Audit, command: tuple[str, ...], message: str
) -> None:
    result = run_audit(*command)
    assert result.code == 2
    assert message in result.err


def test_help_does_not_load_the_audit() -> None:
    code = (
        "import contextlib, io, sys\n"
        "from carto_proxy.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['audit', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('carto_proxy._audit')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
