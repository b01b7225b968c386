"""What ``carto-proxy demo`` prints: a table per scenario, or the JSON ``--json`` documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from carto_proxy._routing import Action, Route
from carto_proxy.cli._check import counts, finding_json
from carto_proxy.cli._demo._scenarios import Scenario
from carto_proxy.cli._shared import emit, route_json, table, wrap

__all__ = ["as_json", "print_report"]


def as_json(
    scenarios: Sequence[Scenario], skipped: Mapping[str, str], ok: bool, elapsed: float
) -> dict[str, Any]:
    """The ``demo --json`` document."""
    return {
        "ok": ok,
        "elapsed_s": round(elapsed, 2),
        "skipped": [{"adapter": name, "reason": reason} for name, reason in skipped.items()],
        "scenarios": [
            {
                "source": scenario.source,
                "check": {
                    "summary": counts(scenario.diagnostics, scenario.findings),
                    "diagnostics": [finding_json(d) for d in scenario.diagnostics],
                    "portability": [finding_json(f) for f in scenario.findings],
                },
                "error": scenario.error,
                "tls": scenario.tls or None,
                "rewrites": [
                    {"variables": list(r.variables), "was": r.was, "now": r.now, "why": r.why}
                    for r in scenario.rewrites
                ],
                "kept": scenario.kept,
                "requests": [
                    {
                        "adapter": o.request.adapter,
                        "request": o.request.label,
                        "route": route_json(o.route),
                        "result": o.result,
                        "expect": "refused" if o.request.refused else "answer",
                        "allow_on": _allow_on(o.route),
                        "proxy_saw": o.proxy_saw,
                        "went_direct": o.went_direct,
                        "as_expected": o.expected,
                        "note": o.note,
                    }
                    for o in scenario.outcomes
                ],
                "proxy_log": scenario.proxy_log,
            }
            for scenario in scenarios
        ],
    }


def print_report(
    scenarios: Sequence[Scenario], skipped: Mapping[str, str], ok: bool, elapsed: float
) -> None:
    """Print the demo's report for people."""
    emit("carto-proxy demo: CARTO's proxy settings at work, against a local recording proxy")
    emit("and local stand-ins (loopback only: no DNS lookup, no connection leaves this machine).")
    for scenario in scenarios:
        emit()
        emit(f"== {scenario.source} ==")
        _check(scenario)
        if scenario.error:
            for line in wrap(f"The configuration is refused: {scenario.error}", ""):
                emit(line)
            emit("carto_proxy would not start with it, so the demo sends nothing.")
            continue
        _rewrites(scenario)
        for line in wrap(scenario.tls, ""):
            emit(line)
        emit()
        _requests(scenario)
        emit()
        _proxy_log(scenario)
    emit()
    for name, reason in skipped.items():
        emit(f"Skipped the {name} adapter: {reason}")
    emit(f"Done in {elapsed:.1f} s: {_verdict(scenarios)}.")


def _verdict(scenarios: Sequence[Scenario]) -> str:
    refused = sum(s.error is not None for s in scenarios)
    unexpected = sum(not o.expected for s in scenarios for o in s.outcomes)
    if unexpected:
        return f"{unexpected} request(s) did NOT go the way their route says (UNEXPECTED above)"
    if refused == len(scenarios):
        return "the configuration is refused, so nothing was sent"
    if refused:
        return (
            f"every request went the way its route says; {refused} configuration(s) refused, "
            "nothing sent for them"
        )
    return "every request went the way its route says"


def _check(scenario: Scenario) -> None:
    found = [*scenario.diagnostics, *scenario.findings]
    emit(f"check --ca-elsewhere: {counts(scenario.diagnostics, scenario.findings)}")
    if found:
        for line in wrap(" ".join(f.code for f in found), "  "):
            emit(line)


def _allow_on(route: Route) -> str:
    """Who must allow the connection: the proxy, or the firewall (it goes direct)."""
    return "proxy" if route.action is Action.PROXY else "firewall"


def _rewrites(scenario: Scenario) -> None:
    emit("Pointed at the demo:")
    for rewrite in scenario.rewrites:
        emit(f"  {', '.join(rewrite.variables)}:")
        emit(f"      {rewrite.was or '(unset)'} -> {rewrite.now}  ({rewrite.why})")
    if scenario.kept:
        emit(f"Kept as written: {', '.join(scenario.kept)}")


def _requests(scenario: Scenario) -> None:
    rows = [
        (
            o.request.adapter,
            o.request.label,
            o.route.action.value,
            o.route.rule.value,
            _allow_on(o.route),
            o.result if o.ok else ("refused" if o.refused else "error"),
            ", ".join(o.proxy_saw) or "-",
            "" if o.expected else "UNEXPECTED",
        )
        for o in scenario.outcomes
    ]
    headers = ("ADAPTER", "REQUEST", "ROUTE", "RULE", "ALLOW ON", "RESULT", "THE PROXY SAW", "")
    lines = table(headers, rows, "  ")
    emit(lines[0])
    for line, outcome in zip(lines[1:], scenario.outcomes, strict=True):
        emit(line)
        for text in wrap(outcome.route.reason, "      "):
            emit(text)
        for extra in (outcome.result if not outcome.ok else None, outcome.note):
            for text in wrap(extra, "      ") if extra else ():
                emit(text)


def _proxy_log(scenario: Scenario) -> None:
    emit("The recording proxy's own log:")
    if not scenario.proxy_log:
        emit("  (nothing)")
        return
    rows = [
        (
            entry["method"],
            entry["target"],
            str(entry["status"]),
            f"{entry['bytes_up']} B up, {entry['bytes_down']} B down",
            "-" if entry["ms"] is None else f"{entry['ms']:.0f} ms",
        )
        for entry in scenario.proxy_log
    ]
    for line in table(("METHOD", "TARGET", "STATUS", "PAYLOAD", "TIME"), rows, "  "):
        emit(line)
