"""``carto-proxy audit -- COMMAND [ARGS…]``: run a Python program with the egress audit on.

Every Python process of the program (it, and the Python processes it starts) reports each
lookup or connection that goes around the proxy; at exit the command prints which hosts did,
how often and from where. Exit status: the program's; with ``--strict``, 1 when there was a
violation and the program exited 0. The audit's machinery is imported only when it runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from carto_proxy._hosts import format_authority
from carto_proxy.cli._shared import (
    EXIT_FINDINGS,
    AddCommand,
    Source,
    UsageError,
    emit,
    emit_json,
    table,
)

__all__ = ["register", "run"]


def register(add: AddCommand) -> None:
    """Add the ``audit`` command."""
    parser = add(
        "audit",
        run,
        help="run a Python program and report the connections that go around the proxy",
        description="Run COMMAND (a Python program: python app.py, pytest, uvicorn app:app) "
        "with the egress audit on in it and in the Python processes it starts, then report "
        "which hosts were looked up or connected to directly although their route says "
        "PROXY, how often, and from where. Exit status: the program's; with --strict, 1 "
        "when there was a violation and the program exited 0. The report goes to standard "
        "error (with --json, a JSON document to standard output).",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 on a violation when the program exits 0"
    )
    parser.add_argument(
        "program",  # not "command": main() names the carto-proxy command by that
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARGS…]",
        help="the program to run, after --",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``audit``; return the exit status."""
    from carto_proxy._audit_run import run_audited  # the engine: not for --help

    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError(
            "give the program to run after --, e.g. carto-proxy audit -- python app.py"
        )
    config = source.routing_config()
    try:
        status, records = run_audited(command, config, source.environ)
    except OSError as error:
        raise UsageError(f"cannot run {command[0]!r}: {error.strerror or error}") from None
    processes = {record.get("pid") for record in records if record.get("event") == "start"}
    violations = [record for record in records if record.get("event") == "violation"]
    if args.json:
        emit_json(
            {"status": status, "processes": len(processes), "violations": _summary(violations)}
        )
    else:
        _print(command, status, len(processes), violations)
    if args.strict and violations and status == 0:
        return EXIT_FINDINGS
    return status


def _summary(violations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per host, port, kind and place, most frequent first, with its count."""
    rows: dict[tuple[str, Any, str, str], dict[str, Any]] = {}
    for violation in violations:
        host, port = str(violation.get("host")), violation.get("port")
        kind, where = str(violation.get("kind")), str(violation.get("where"))
        row = rows.setdefault(
            (host, port, kind, where),
            {
                "host": host,
                "port": port,
                "kind": kind,
                "where": where,
                "count": 0,
                "proxy": violation.get("proxy"),
                "variable": violation.get("variable"),
                "rule": violation.get("rule"),
                "pids": [],
            },
        )
        row["count"] += 1
        if violation.get("pid") not in row["pids"]:
            row["pids"].append(violation.get("pid"))
    return sorted(rows.values(), key=lambda row: -int(row["count"]))


def _print(
    command: Sequence[str], status: int, processes: int, violations: Sequence[dict[str, Any]]
) -> None:
    err = sys.stderr
    program = os.path.basename(command[0])
    ended = f"{program} exited {status}{_signal_name(status)}"
    if processes == 0:
        emit(
            f"carto-proxy audit: no Python process was audited ({ended}); is it a Python "
            "program? (python -I, -E and -S skip the audit)",
            stream=err,
        )
        return
    audited = f"{processes} Python process{'es' if processes != 1 else ''} audited"
    if not violations:
        emit(f"carto-proxy audit: nothing went around the proxy ({audited}; {ended})", stream=err)
        return
    rows = _summary(violations)
    count = len(violations)
    emit(
        f"carto-proxy audit: {count} lookup{'s' if count != 1 else ''} or connection"
        f"{'s' if count != 1 else ''} went around the proxy ({audited}; {ended}):",
        stream=err,
    )
    lines = table(
        ("HOST:PORT", "KIND", "COUNT", "ROUTE", "FROM"),
        [
            (
                row["host"] if row["port"] is None else format_authority(row["host"], row["port"]),
                row["kind"],
                str(row["count"]),
                f"PROXY via {row['proxy']} ({row['variable']})",
                row["where"],
            )
            for row in rows
        ],
        indent="  ",
    )
    for line in lines:
        emit(line, stream=err)
    emit(
        "  Send these through the proxy (a carto_proxy adapter, or the client's proxy "
        "setting), or add the hosts that must go direct to NO_PROXY.",
        stream=err,
    )


def _signal_name(status: int) -> str:
    if status <= 128:
        return ""
    try:
        return f" ({signal.Signals(status - 128).name})"
    except ValueError:
        return ""
