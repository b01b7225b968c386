"""Diagnostic: the one finding type of ``check()`` and the portability lint."""

from __future__ import annotations

from dataclasses import dataclass

from carto_proxy._codes import CODES, Severity
from carto_proxy.exceptions import ConfigError

__all__ = ["Diagnostic", "finding", "from_error", "sort_findings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One finding: a stable code, its severity, what it is about, what is wrong, the fix.

    Attributes:
        code: the stable code, e.g. ``"CP106"`` (documented in docs/diagnostics.md and, for
            ``CP5xx``, docs/cli.md).
        severity: ``error``, ``warning`` or ``info``; each code has one.
        variable: the variable (or Helm value) it is about, as it was set.
        message: what is wrong, in one or two sentences.
        fix: how to put it right.
        entry: for a NO_PROXY entry, the entry as written (user information masked).
        tools: for a portability finding, the ids of the tools that read the value
            differently (``"curl"``, ``"grpc"``...; see ``carto-proxy check`` docs).
    """

    code: str
    severity: Severity
    variable: str | None
    message: str
    fix: str
    entry: str | None = None
    tools: tuple[str, ...] = ()

    def __str__(self) -> str:
        about = f" {self.variable}" if self.variable else ""
        if self.entry is not None:
            about += f" entry {self.entry!r}"
        return f"{self.code} {self.severity.value}{about}: {self.message} Fix: {self.fix}"


def finding(
    code: str,
    variable: str | None,
    message: str,
    fix: str,
    *,
    entry: str | None = None,
    tools: tuple[str, ...] = (),
) -> Diagnostic:
    """A :class:`Diagnostic` for *code*, with the severity the code table gives it."""
    return Diagnostic(
        code=code,
        severity=CODES[code].severity,
        variable=variable,
        message=message,
        fix=fix,
        entry=entry,
        tools=tools,
    )


def from_error(error: ConfigError) -> Diagnostic:
    """The finding that reports a refused value: the error's code, variable and fix."""
    shown = "" if error.value is None else f" (value {error.value!r})"
    return finding(error.code, error.variable, f"{error.problem}{shown}.", error.fix)


_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def sort_findings(found: list[Diagnostic]) -> list[Diagnostic]:
    """Errors first, then warnings, then info; by code within each."""
    return sorted(found, key=lambda d: (_ORDER[d.severity], d.code))
