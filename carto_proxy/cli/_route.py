"""``carto-proxy route TARGET…``: the decision for each target, and why.

Never touches the network. A target that cannot be parsed exits 2 and prints no routes.
"""

from __future__ import annotations

import argparse
import sys

from carto_proxy._routing import Route
from carto_proxy._target import Protocol
from carto_proxy._warehouses import Warehouse
from carto_proxy.cli._shared import (
    EXIT_OK,
    EXIT_USAGE,
    AddCommand,
    Source,
    emit,
    emit_json,
    route_json,
    table,
    wrap,
)
from carto_proxy.exceptions import TargetError

__all__ = ["register", "run"]


def register(add: AddCommand) -> None:
    """Add the ``route`` command."""
    parser = add(
        "route",
        run,
        help="show how each target is reached: through the proxy or direct, and why",
        description="Route each TARGET (URL, host[:port], gRPC target or warehouse DSN) under "
        "the configuration and explain the decision. Exit 2 if a target cannot be parsed.",
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET")
    parser.add_argument(
        "--protocol",
        choices=[p.value for p in Protocol],
        help="the protocol, overriding the target's scheme (bare host[:port] means https)",
    )
    parser.add_argument(
        "--warehouse",
        choices=[w.value for w in Warehouse],
        help="the warehouse the targets belong to, when their host names do not say",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``route``; return the exit status."""
    config = source.routing_config()
    routes: list[tuple[str, Route]] = []
    failed = False
    for target in args.targets:
        try:
            routes.append(
                (target, config.route(target, protocol=args.protocol, warehouse=args.warehouse))
            )
        except TargetError as error:
            emit(f"carto-proxy route: {error}", stream=sys.stderr)
            failed = True
    if failed:
        return EXIT_USAGE
    if args.json:
        emit_json([route_json(route, given=given) for given, route in routes])
        return EXIT_OK
    rows = [
        (
            str(route.target),
            route.action.value,
            str(route.proxy) if route.proxy else "-",
            route.rule.value,
            route.warehouse.value if route.warehouse else "-",
            route.matched_entry or "-",
            "yes" if route.needs_direct_egress else "no",
        )
        for _, route in routes
    ]
    lines = table(
        ("TARGET", "ACTION", "VIA", "RULE", "WAREHOUSE", "MATCHED", "DIRECT EGRESS"), rows
    )
    emit(lines[0])
    for line, (_, route) in zip(lines[1:], routes, strict=True):
        emit(line)
        for wrapped in wrap(route.reason, "    "):
            emit(wrapped)
    return EXIT_OK
