"""``carto-proxy probe``: real connectivity, along the route each host would take.

Probes each CARTO egress domain (or each ``--host``) with the engine in :mod:`._engine`,
imported only when the command runs, and reports what came of each: reachable, refused by the
proxy, a failing TLS hop and its certificate, or a timeout.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from carto_proxy.cli._shared import (
    EXIT_FINDINGS,
    EXIT_OK,
    AddCommand,
    Source,
    UsageError,
    add_egress_list_option,
    bounded,
    chosen_egress_lists,
    emit,
    emit_json,
    route_json,
    table,
)

if TYPE_CHECKING:
    from carto_proxy.cli._probe._engine import ProbeResult

__all__ = ["MAX_CONCURRENCY", "MAX_TIMEOUT", "register", "run"]

MAX_TIMEOUT = 3600.0
"""The longest ``--timeout``: an hour per host, far below what socket timeouts overflow at."""
MAX_CONCURRENCY = 64
"""The most hosts probed at once (one thread each)."""


def register(add: AddCommand) -> None:
    """Add the ``probe`` command."""
    parser = add(
        "probe",
        run,
        help="test real connectivity to each egress domain along its route",
        description="For each CARTO egress domain (or --host), follow its route: CONNECT "
        "through the proxy or connect directly, then a TLS handshake. Exit 1 if any host "
        "probed is not reachable. This command uses the network.",
    )
    parser.add_argument(
        "--host",
        dest="hosts",
        metavar="HOST",
        action="append",
        default=[],
        help="probe HOST[:PORT] (or an https:// or grpc:// URL) instead of the egress list; "
        "repeatable, comma-separated",
    )
    add_egress_list_option(parser, help="which of CARTO's egress lists to probe (default: all)")
    parser.add_argument(
        "--timeout",
        type=bounded(float, 0, MAX_TIMEOUT, unit="seconds"),
        default=5.0,
        metavar="SECONDS",
        help=f"time allowed for each host, all steps together: 0 < SECONDS <= {MAX_TIMEOUT:g} "
        "(default: 5)",
    )
    parser.add_argument(
        "--concurrency",
        type=bounded(int, 1, MAX_CONCURRENCY),
        default=8,
        metavar="N",
        help=f"hosts probed at the same time, 1 to {MAX_CONCURRENCY} (default: 8)",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``probe``; return the exit status."""
    from carto_proxy.cli._probe._engine import probe  # ssl, socket, threads: only for this command

    config = source.config()
    targets = _targets(args)
    progress = _Progress(len(targets)) if sys.stderr.isatty() and not args.json else None
    results = probe(
        config,
        targets,
        timeout=args.timeout,
        concurrency=args.concurrency,
        on_result=progress.step if progress else None,
    )
    if progress:
        progress.done()
    if args.json:
        emit_json(
            {"results": [_json(r) for r in results], "summary": _summary(results)},
        )
    else:
        _print(results)
    failed = any(r.result not in ("reachable", "not_probed") for r in results)
    return EXIT_FINDINGS if failed else EXIT_OK


def _targets(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(shown, target to route or None for a wildcard)`` pairs, without duplicates."""
    if args.hosts:
        hosts = [h.strip() for value in args.hosts for h in value.split(",") if h.strip()]
        for host in hosts:
            if host.lower().startswith(("http://", "postgres", "redshift://")):
                raise UsageError(f"--host {host}: probe checks TLS endpoints (https or grpc)")
        return [(host, host) for host in dict.fromkeys(hosts)]
    from carto_proxy._egress import load_egress  # loaded only when the lists are probed

    lists = chosen_egress_lists(load_egress(), args)
    found: dict[str, str | None] = {}
    for egress in lists:
        for group in egress.groups:
            for domain in group.domains:
                key = domain.squid
                if key not in found:
                    found[key] = None if domain.wildcard else domain.domain
    return [(f"*.{key[1:]}" if key.startswith(".") else key, host) for key, host in found.items()]


class _Progress:
    def __init__(self, total: int) -> None:
        self.total, self.count = total, 0
        self.lock = threading.Lock()

    def step(self, result: ProbeResult) -> None:
        with self.lock:
            self.count += 1
            line = f"probing: {self.count}/{self.total} done, last {result.target}"
            sys.stderr.write(f"\r{line[:79]:<79}")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 79 + "\r")
        sys.stderr.flush()


def _json(result: ProbeResult) -> dict[str, Any]:
    certificate = result.certificate
    return {
        "target": result.target,
        "route": None if result.route is None else route_json(result.route),
        "result": result.result,
        "hop": result.hop,
        "step": result.step,
        "status": result.status,
        "error": result.error,
        "certificate": None
        if certificate is None
        else {
            "subject": certificate.subject,
            "issuer": certificate.issuer,
            "names": list(certificate.names),
            "not_after": certificate.not_after,
            "sha256": certificate.sha256,
        },
        "timings_ms": result.timings,
        "elapsed_ms": round(result.elapsed, 1),
    }


def _summary(results: Sequence[ProbeResult]) -> dict[str, int]:
    from carto_proxy.cli._probe._engine import RESULTS  # loaded by run() already

    counts = dict.fromkeys((*RESULTS, "not_probed"), 0)
    for result in results:
        counts[result.result] += 1
    return counts


def _print(results: Sequence[ProbeResult]) -> None:
    rows = []
    details = []
    for result in results:
        route = result.route
        via = "-" if route is None else (str(route.proxy) if route.proxy else "direct")
        shown = result.result if result.status is None else f"{result.result} ({result.status})"
        elapsed = "-" if result.result == "not_probed" else f"{result.elapsed:.0f} ms"
        rows.append((result.target, via, shown, elapsed))
        detail = []
        if result.error:
            where = f"{result.hop} hop, {result.step.replace('_', ' ')}: " if result.step else ""
            detail.append(f"{where}{result.error}")
        if result.certificate is not None and result.result != "reachable":
            cert = result.certificate
            detail.append(f"certificate: subject {cert.subject}; issuer {cert.issuer}")
            if cert.names:
                detail.append(f"certificate names: {', '.join(cert.names)}")
        details.append(detail)
    lines = table(("TARGET", "VIA", "RESULT", "TIME"), rows)
    emit(lines[0])
    for line, detail in zip(lines[1:], details, strict=True):
        emit(line)
        for text in detail:
            emit(f"    {text}")
    counts = _summary(results)
    emit()
    emit(", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items() if count))
