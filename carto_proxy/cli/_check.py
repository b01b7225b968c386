"""``carto-proxy check``: every diagnostic, plus the portability lint.

Errors exit 1; warnings and portability findings exit 0 unless ``--strict``. Never touches
the network.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from carto_proxy import _env
from carto_proxy._check import check_sources
from carto_proxy._config import CALoading
from carto_proxy._diagnostics import (
    TOOLS,
    Diagnostic,
    Severity,
    from_error,
    lint,
    tool_names,
)
from carto_proxy.cli._shared import (
    EXIT_FINDINGS,
    EXIT_OK,
    AddCommand,
    Source,
    emit,
    emit_json,
    wrap,
)
from carto_proxy.exceptions import ConfigError

__all__ = ["counts", "finding_json", "gather", "gather_sources", "register", "run"]


def register(add: AddCommand) -> None:
    """Add the ``check`` command."""
    parser = add(
        "check",
        run,
        help="report mistakes and portability problems in the configuration",
        description="Report every diagnostic (CP1xx-CP3xx) and portability finding (CP5xx). "
        "Exit 1 on errors; with --strict, also on warnings and warning-level portability "
        "findings.",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 on warnings too, not only on errors"
    )
    parser.add_argument(
        "--ca-elsewhere",
        action="store_true",
        help="the NODE_EXTRA_CA_CERTS file is checked on another machine (where CARTO runs): "
        "do not read it here (one info finding, CP307, instead of CP305 when it is missing)",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``check``; return the exit status."""
    origin, diagnostics, findings = gather(source, ca="defer" if args.ca_elsewhere else "load")
    if args.json:
        emit_json(
            {
                "diagnostics": [finding_json(d) for d in diagnostics],
                "portability": [finding_json(f) for f in findings],
            }
        )
    else:
        _print(origin, diagnostics, findings, strict=args.strict)
    return _status(diagnostics, findings, strict=args.strict)


def gather(
    source: Source, *, ca: CALoading = "load"
) -> tuple[str, list[Diagnostic], list[Diagnostic]]:
    """Read *source* once; return its name, its diagnostics and its portability findings.

    *ca* is as for :func:`carto_proxy.check`: ``"defer"`` leaves the CA file to the machine
    that has it.

    Raises:
        UsageError: the source file cannot be opened at all.
    """
    try:
        sources = source.read()
    except ConfigError as error:  # the file exists but cannot be read as a whole
        what = source.env_file or source.helm_values or "environment"
        return what, [from_error(error)], []
    return (sources.origin, *gather_sources(sources, ca=ca))


def gather_sources(
    sources: _env.Sources, *, ca: CALoading = "load"
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """The diagnostics and the portability findings of variables already read."""
    config, diagnostics = check_sources(sources, ca=ca)
    return diagnostics, lint(config)


def _status(
    diagnostics: Sequence[Diagnostic], findings: Sequence[Diagnostic], *, strict: bool
) -> int:
    severities = {d.severity for d in diagnostics}
    if Severity.ERROR in severities:
        return EXIT_FINDINGS
    if strict and (
        Severity.WARNING in severities or any(f.severity is Severity.WARNING for f in findings)
    ):
        return EXIT_FINDINGS
    return EXIT_OK


def finding_json(diagnostic: Diagnostic) -> dict[str, Any]:
    """A finding as the stable JSON object ``check --json`` documents."""
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "variable": diagnostic.variable,
        "entry": diagnostic.entry,
        "tools": list(diagnostic.tools),
        "message": diagnostic.message,
        "fix": diagnostic.fix,
    }


def _print(
    origin: str, diagnostics: Sequence[Diagnostic], findings: Sequence[Diagnostic], *, strict: bool
) -> None:
    emit(f"Source: {origin}")
    emit()
    emit("Diagnostics")
    if not diagnostics:
        emit("  none")
    for d in diagnostics:
        emit(f"  {d.code}  {d.severity.value:<7}  {d.variable or ''}".rstrip())
        _details(d.message, d.fix)
    emit()
    emit("Portability (how other tools read the same values)")
    if not findings:
        emit("  none")
    for f in findings:
        about = f"{f.variable} entry {f.entry!r}" if f.entry is not None else f.variable
        emit(f"  {f.code}  {f.severity.value:<7}  {about}")
        tools = "every client" if set(f.tools) == set(TOOLS) else tool_names(f.tools)
        _details(f.message, f.fix, tools=tools)
    emit()
    emit(_summary(diagnostics, findings, strict=strict))


def _details(message: str, fix: str, *, tools: str | None = None) -> None:
    indent = "        "
    if tools:
        for line in wrap(f"tools: {tools}", indent):
            emit(line)
    for line in wrap(message, indent):
        emit(line)
    for line in wrap(f"fix: {fix}", indent):
        emit(line)


def counts(diagnostics: Sequence[Diagnostic], findings: Sequence[Diagnostic]) -> str:
    """How many findings of each severity: the sentence ``check`` ends with."""
    by_severity = {s: sum(d.severity is s for d in diagnostics) for s in Severity}
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    return (
        f"{by_severity[Severity.ERROR]} error(s), {by_severity[Severity.WARNING]} warning(s), "
        f"{by_severity[Severity.INFO]} info; {len(findings)} portability finding(s) "
        f"({warnings} warning(s))."
    )


def _summary(
    diagnostics: Sequence[Diagnostic], findings: Sequence[Diagnostic], *, strict: bool
) -> str:
    text = counts(diagnostics, findings)
    status = _status(diagnostics, findings, strict=strict)
    if status:
        return f"{text} Exit status 1."
    warned = any(d.severity is Severity.WARNING for d in (*diagnostics, *findings))
    if not strict and warned:
        return f"{text} Exit status 0 (--strict fails on warnings)."
    return f"{text} Exit status 0."
