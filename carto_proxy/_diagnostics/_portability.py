"""The portability lint: which common tools would read a proxy setting differently.

carto_proxy reads every variable and NO_PROXY entry one way (DESIGN §3); the other programs
on the same machine do not. This lint compares each variable and each NO_PROXY entry with
what Go, curl, Python's urllib, requests, httpx, Node's proxy-from-env and undici, and gRPC do
with it, as measured in ``no-proxy-dialects.md`` (curl 7.88, requests 2.34, httpx 0.28,
proxy-from-env 1.1/2.1, undici 7, grpcio 1.85, Go 1.19), and reports where they part ways.
With Helm values it also checks the Kubernetes exclusions CARTO's Helm guide asks for.

Codes are ``CP5xx`` and never change meaning: ``CP50x``/``CP51x`` NO_PROXY entries,
``CP52x`` variables, ``CP53x`` Kubernetes hints. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from carto_proxy import _env
from carto_proxy._routing import Rule

from ._diagnostic import Diagnostic, finding, sort_findings
from ._portability_entries import entry_findings
from ._portability_variables import variable_portability
from ._tools import ALL_TOOLS

if TYPE_CHECKING:
    from carto_proxy._config import ProxyConfig
    from carto_proxy._no_proxy import NoProxy

__all__ = ["exclusion_lists", "lint"]

_CLUSTER_PROBE = "carto-proxy-check.svc.cluster.local"


def lint(config: ProxyConfig) -> list[Diagnostic]:
    """Return the portability findings for *config*, warnings first, then by code.

    Variable findings need the raw values, so they come only for a configuration read by a
    named constructor (``config.sources`` set); NO_PROXY entries are always linted.
    """
    found: list[Diagnostic] = []
    sources = config.sources
    if sources is not None:
        for name in _env.CASE_PAIRS:
            found += variable_portability(sources.get(name))
    for name, no_proxy, readers in exclusion_lists(config):
        ignored = {item.entry for item in no_proxy.ignored}
        found += entry_findings(_shown_name(sources, name), no_proxy.entries, readers, ignored)
    if sources is not None and sources.from_helm and config.has_proxy:
        found += _kubernetes(config)
    return sort_findings(found)


def exclusion_lists(config: ProxyConfig) -> Iterator[tuple[str, NoProxy, tuple[str, ...]]]:
    """``(variable, list, the tools that read it)`` for NO_PROXY and NO_GRPC_PROXY, when set.

    Only gRPC reads NO_GRPC_PROXY, and once it is set gRPC no longer reads NO_PROXY.
    """
    grpc_has_own = config.no_grpc_proxy is not None
    if config.no_proxy:
        yield (
            "NO_PROXY",
            config.no_proxy,
            tuple(t for t in ALL_TOOLS if not (grpc_has_own and t == "grpc")),
        )
    if config.no_grpc_proxy:
        yield "NO_GRPC_PROXY", config.no_grpc_proxy, ("grpc",)


def _shown_name(sources: _env.Sources | None, name: str) -> str:
    if sources is None:
        return name
    if sources.from_helm and name == "NO_PROXY":
        return "externalProxy.excludedDomains"  # where the entries were written
    return sources.get(name).source or name


def _kubernetes(config: ProxyConfig) -> Iterator[Diagnostic]:
    variable = "externalProxy.excludedDomains"
    if config.route(_CLUSTER_PROBE).rule is not Rule.NO_PROXY:
        yield finding(
            "CP530",
            variable,
            "in-cluster service names (*.svc.cluster.local) are not excluded: CARTO's Helm "
            "guide says they must be, or calls between CARTO's own services go to the proxy.",
            "add .svc.cluster.local to externalProxy.excludedDomains (Kots: also the "
            "kubernetes service's ClusterIP)",
            tools=ALL_TOOLS,
        )
    # The metadata server is check()'s finding (CP205); the lint does not repeat it.
    if config.route("http://localhost").rule is not Rule.NO_PROXY:
        yield finding(
            "CP532",
            variable,
            "localhost is not excluded: CARTO's Helm examples list it, so that calls inside a "
            "pod never go to the proxy.",
            "add localhost to externalProxy.excludedDomains",
            tools=ALL_TOOLS,
        )
