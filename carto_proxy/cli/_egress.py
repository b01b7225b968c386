"""``carto-proxy egress``: CARTO's egress domains and who must allow each one.

Every domain is routed under the configuration: the proxy must allow what it carries, the
firewall what goes direct. ``--format squid`` prints a Squid ACL allowing exactly the proxied
domains. Never touches the network.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from carto_proxy.cli._shared import (
    EXIT_OK,
    AddCommand,
    Source,
    UsageError,
    add_egress_list_option,
    chosen_egress_lists,
    emit,
    emit_json,
    route_json,
    table,
    wrap,
)

if TYPE_CHECKING:
    from carto_proxy._egress import EgressList, EgressRoute

__all__ = ["register", "run"]


def register(add: AddCommand) -> None:
    """Add the ``egress`` command."""
    parser = add(
        "egress",
        run,
        help="list CARTO's egress domains: what the proxy and the firewall must allow",
        description="Route every domain of CARTO's egress lists (shipped as versioned data) "
        "under the configuration: what the proxy must allow, and what the firewall must "
        "allow because it goes direct.",
    )
    add_egress_list_option(parser, help="which of CARTO's lists (default: all)")
    parser.add_argument(
        "--format",
        choices=("table", "squid"),
        default="table",
        help="'squid': a Squid ACL snippet allowing exactly the proxied domains",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``egress``; return the exit status."""
    from carto_proxy._egress import load_egress, route_egress, squid_acl  # this command's data

    if args.json and args.format == "squid":
        raise UsageError("--json and --format squid exclude each other")
    config = source.routing_config()
    data = load_egress()
    lists = chosen_egress_lists(data, args)
    routes = route_egress(config, lists)
    if args.format == "squid":
        if not config.has_proxy:
            emit(
                "carto-proxy egress: no proxy is configured, so the ACL allows nothing",
                stream=sys.stderr,
            )
        header = (
            f"CARTO egress domains carried by the proxy (carto-proxy egress data {data.version};"
            f" lists: {', '.join(item.name for item in lists)})",
            "Place these lines before 'http_access deny all'.",
        )
        emit(squid_acl(routes, header=header).rstrip("\n"))
        return EXIT_OK
    if args.json:
        emit_json(_json(data.version, lists, routes))
        return EXIT_OK
    _print(data.version, lists, routes)
    return EXIT_OK


def _json(version: str, lists: Sequence[EgressList], routes: Sequence[EgressRoute]) -> Any:
    by_list: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for item in routes:
        features = by_list.setdefault(item.list, {})
        features.setdefault(item.feature, []).append(
            {
                "entry": item.domain.entry,
                "wildcard": item.domain.wildcard,
                "allow_on": item.allow_on,
                "route": route_json(item.route),
            }
        )
    return {
        "version": version,
        "lists": [
            {
                "name": egress.name,
                "title": egress.title,
                "source": egress.source,
                "note": egress.note,
                "groups": [
                    {
                        "feature": group.feature,
                        "required": group.required,
                        "domains": by_list[egress.name][group.feature],
                    }
                    for group in egress.groups
                ],
            }
            for egress in lists
        ],
        "proxy_must_allow": _allowed(routes, "proxy"),
        "firewall_must_allow": _allowed(routes, "firewall"),
    }


def _allowed(routes: Sequence[EgressRoute], where: str) -> list[str]:
    """The distinct domains allowed on *where*, wildcards written ``*.domain``."""
    return list(
        dict.fromkeys(
            f"*.{r.domain.domain}" if r.domain.wildcard else r.domain.domain
            for r in routes
            if r.allow_on == where
        )
    )


def _print(version: str, lists: Sequence[EgressList], routes: Sequence[EgressRoute]) -> None:
    for egress in lists:
        emit(f"{egress.title} ('{egress.name}', data {version})")
        emit(f"  source: {egress.source}")
        rows = [
            (
                item.feature,
                "always" if item.required else "optional",
                item.domain.entry,
                item.route.action.value,
                item.route.rule.value,
                item.allow_on,
            )
            for item in routes
            if item.list == egress.name
        ]
        headers = ("FEATURE", "NEEDED", "DOMAIN", "ROUTE", "RULE", "ALLOW ON")
        for line in table(headers, rows, "  "):
            emit(line)
        emit()
    proxy, firewall = _allowed(routes, "proxy"), _allowed(routes, "firewall")
    for text in (
        f"The proxy must allow ({len(proxy)}): {', '.join(proxy) or 'nothing'}.",
        f"The firewall must allow direct egress to ({len(firewall)}): "
        f"{', '.join(firewall) or 'nothing'}.",
        "Wildcard entries are routed as a subdomain of their domain (*.x as any-subdomain.x).",
    ):
        for line in wrap(text, ""):
            emit(line)
