"""Run a program under the egress audit: what ``carto-proxy audit`` hands its child processes,
and what they hand back.

The parent puts :data:`BOOTSTRAP` first on ``PYTHONPATH`` and the configuration and a report
file in :data:`ENV` (:func:`child_environ`). Every Python process started with that
environment (the program and the Python processes it starts, which inherit it) imports the
bootstrap's ``sitecustomize``, which calls :func:`start_from_environment`: an audit that
appends each violation to the report file as one JSON line, the moment it happens, so that a
process that ends abruptly (``os._exit``, a signal) has already reported. The parent reads
the file back with :func:`read_report` once the program has exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._audit import Audit, Violation, audit
from ._config import ProxyConfig, build
from ._env import CASE_PAIRS, read_environ

__all__ = [
    "BOOTSTRAP",
    "ENV",
    "child_environ",
    "read_report",
    "run_audited",
    "start_from_environment",
]

ENV = "CARTO_PROXY_AUDIT"
BOOTSTRAP = Path(__file__).resolve().with_name("_audit_site")
"""The directory holding the bootstrap ``sitecustomize``."""


def child_environ(
    config: ProxyConfig, report: str | os.PathLike[str], environ: Mapping[str, str]
) -> dict[str, str]:
    """*environ* plus what makes each Python process started with it audit itself.

    Only the routing variables of *config* are passed (the children judge by them; their own
    environment is left as it was, so the program runs as it would without the audit).
    """
    settings = {
        "config": {name: value for name, value in config.to_env().items() if name in CASE_PAIRS},
        "report": os.fspath(report),
        # Where carto_proxy lives, for a child interpreter that cannot import it itself.
        "package": str(Path(__file__).resolve().parent.parent),
    }
    child = dict(environ)
    child[ENV] = json.dumps(settings)
    paths = [str(BOOTSTRAP), *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
    child["PYTHONPATH"] = os.pathsep.join(paths)
    return child


def start_from_environment(environ: Mapping[str, str] | None = None) -> Audit | None:
    """Start this process's audit from :data:`ENV`; ``None`` when it is not set.

    Raises:
        ConfigError: the configuration passed is unusable (the parent checked it).
        OSError: the report file cannot be opened.
    """
    raw = (os.environ if environ is None else environ).get(ENV)
    if not raw:
        return None
    settings = json.loads(raw)
    config = build(read_environ(settings["config"], origin="carto-proxy audit"))
    report = _Report(settings["report"])
    report.write({"event": "start", "executable": sys.executable})
    return audit(config, on_violation=report.violation)


class _Report:
    """The report file, appended to by every audited process (one ``write`` per line)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({"pid": os.getpid(), **record}, ensure_ascii=True) + "\n"
        with self._lock:
            os.write(self._fd, line.encode("ascii"))

    def violation(self, violation: Violation) -> None:
        route = violation.route
        self.write(
            {
                "event": "violation",
                "host": violation.host,
                "port": violation.port,
                "kind": violation.kind,
                "where": violation.where,
                "proxy": str(route.proxy),
                "variable": route.variable,
                "rule": route.rule.value,
            }
        )


def read_report(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records the audited processes wrote, in order; a torn last line is skipped."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def run_audited(
    command: Sequence[str], config: ProxyConfig, environ: Mapping[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    """Run *command* to its end under the audit; return its exit status and the report.

    The status is the program's, ``128 + N`` when signal N ended it.

    Raises:
        OSError: the program cannot be started.
    """
    with tempfile.TemporaryDirectory(prefix="carto-proxy-audit-") as workdir:
        report = Path(workdir, "report.jsonl")
        process = subprocess.Popen(command, env=child_environ(config, report, environ))
        while True:
            try:
                returncode = process.wait()
                break
            except KeyboardInterrupt:  # the program got it too: let it end as it chooses
                continue
        status = 128 - returncode if returncode < 0 else returncode
        return status, read_report(report)
