"""CARTO's egress domain lists, shipped as versioned data, and their routes under a config.

The lists live in ``carto_proxy/data/egress.json`` (``schema`` 1; ``version`` changes whenever
a domain is added or removed). Each list names its source and groups its domains by feature.
A wildcard entry (``.x`` or ``*.x``, as CARTO writes both) names no host: it is routed as a
subdomain of ``x``, so warehouse rules apply to it (``*.snowflakecomputing.com`` is Snowflake).

Nothing here reads the environment or touches the network.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._hosts import normalize_name
from carto_proxy._routing import Action, Route
from carto_proxy._target import Protocol

__all__ = [
    "WILDCARD_LABEL",
    "EgressData",
    "EgressDomain",
    "EgressGroup",
    "EgressList",
    "EgressRoute",
    "load_egress",
    "route_egress",
    "squid_acl",
]

WILDCARD_LABEL = "any-subdomain"
"""The label put in front of a wildcard entry's domain to route it as a subdomain."""

_SCHEMA = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressDomain:
    """One entry of an egress list.

    Attributes:
        entry: the entry as CARTO writes it, e.g. ``auth.carto.com`` or ``*.amazonaws.com``.
        domain: the host name, or the wildcard's domain, normalised (``amazonaws.com``).
        wildcard: the entry stands for every subdomain of :attr:`domain`, not a host.
    """

    entry: str
    domain: str
    wildcard: bool

    @property
    def target(self) -> str:
        """The host to route: the name itself, or a subdomain for a wildcard."""
        return f"{WILDCARD_LABEL}.{self.domain}" if self.wildcard else self.domain

    @property
    def squid(self) -> str:
        """The entry as a Squid ``dstdomain`` value (``.x`` covers x and its subdomains)."""
        return f".{self.domain}" if self.wildcard else self.domain

    @classmethod
    def parse(cls, entry: str) -> EgressDomain:
        """Parse an entry; ``ValueError`` when it is no host name or wildcard."""
        text = entry.strip()
        wildcard = text.startswith(("*.", "."))
        name = normalize_name(text[2:] if text.startswith("*.") else text.lstrip("."))
        if name is None or "*" in text[2:]:
            raise ValueError(f"egress entry {entry!r} is not a host name or a wildcard domain")
        return cls(entry=text, domain=name, wildcard=wildcard)


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressGroup:
    """The domains one feature needs; :attr:`required` for every installation."""

    feature: str
    required: bool
    domains: tuple[EgressDomain, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressList:
    """One of CARTO's published lists (``current`` or ``legacy``) and where it comes from."""

    name: str
    title: str
    source: str
    note: str
    groups: tuple[EgressGroup, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressData:
    """Every list in the data file, and the file's version."""

    version: str
    lists: tuple[EgressList, ...]

    def select(self, names: Iterable[str] | None = None) -> tuple[EgressList, ...]:
        """Return the lists named (all of them for ``None``), in data order.

        Raises:
            KeyError: a name is not one of the lists.
        """
        if names is None:
            return self.lists
        wanted = list(names)
        known = {item.name for item in self.lists}
        for name in wanted:
            if name not in known:
                raise KeyError(name)
        return tuple(item for item in self.lists if item.name in wanted)


@dataclass(frozen=True, slots=True, kw_only=True)
class EgressRoute:
    """An egress entry with its route: who must allow it.

    Attributes:
        list: the list's name.
        feature: the group's feature.
        required: whether the group is required.
        domain: the entry.
        route: the decision for :attr:`EgressDomain.target` over HTTPS.
    """

    list: str
    feature: str
    required: bool
    domain: EgressDomain
    route: Route

    @property
    def allow_on(self) -> str:
        """``"proxy"`` when the proxy carries it, ``"firewall"`` when it goes direct."""
        return "proxy" if self.route.action is Action.PROXY else "firewall"


@functools.cache
def load_egress() -> EgressData:
    """Read and validate the packaged egress data (once per process)."""
    text = resources.files("carto_proxy").joinpath("data", "egress.json").read_text("utf-8")
    return parse_egress(json.loads(text))


def parse_egress(document: Any) -> EgressData:
    """Validate an egress document (see ``data/egress.json``).

    Raises:
        ValueError: the document does not have the expected shape.
    """
    if not isinstance(document, dict) or document.get("schema") != _SCHEMA:
        raise ValueError(f"egress data: expected a mapping with schema {_SCHEMA}")
    lists = []
    for raw in document["lists"]:
        groups = tuple(
            EgressGroup(
                feature=str(group["feature"]),
                required=bool(group["required"]),
                domains=tuple(EgressDomain.parse(entry) for entry in group["domains"]),
            )
            for group in raw["groups"]
        )
        lists.append(
            EgressList(
                name=str(raw["name"]),
                title=str(raw["title"]),
                source=str(raw["source"]),
                note=str(raw.get("note", "")),
                groups=groups,
            )
        )
    return EgressData(version=str(document["version"]), lists=tuple(lists))


def route_egress(config: ProxyConfig, lists: Sequence[EgressList]) -> list[EgressRoute]:
    """Route every entry of *lists* (as HTTPS on port 443) under *config*, in data order."""
    return [
        EgressRoute(
            list=egress.name,
            feature=group.feature,
            required=group.required,
            domain=domain,
            route=config.route(domain.target, protocol=Protocol.HTTPS),
        )
        for egress in lists
        for group in egress.groups
        for domain in group.domains
    ]


def squid_acl(routes: Sequence[EgressRoute], *, header: Sequence[str] = ()) -> str:
    """Return a Squid snippet allowing exactly the proxied entries of *routes*.

    One ``acl <name> dstdomain -n`` line per feature, with the entries no earlier line covers
    (``-n``: never reverse-resolve an IP-literal request to match names), and one
    ``http_access allow <name>`` line for each. Paste it before ``http_access deny all``.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    covered: list[EgressDomain] = []
    groups: dict[str, list[str]] = {}
    for item in routes:
        if item.route.action is not Action.PROXY or _covered(item.domain, covered):
            continue
        # A wildcard listed after its own subdomains would make Squid warn about overlaps.
        covered[:] = [d for d in covered if not (item.domain.wildcard and _under(d, item.domain))]
        for values in groups.values():
            values[:] = [v for v in values if not _squid_under(v, item.domain)]
        covered.append(item.domain)
        groups.setdefault(_acl_name(item.list, item.feature), []).append(item.domain.squid)
    for name, values in groups.items():
        if values:
            lines.append(f"acl {name} dstdomain -n {' '.join(values)}")
    for name, values in groups.items():
        if values:
            lines.append(f"http_access allow {name}")
    return "\n".join(lines) + "\n"


def _under(domain: EgressDomain, wildcard: EgressDomain) -> bool:
    return domain.domain == wildcard.domain or domain.domain.endswith(f".{wildcard.domain}")


def _covered(domain: EgressDomain, covered: Sequence[EgressDomain]) -> bool:
    for other in covered:
        if other == domain or other.squid == domain.squid:
            return True
        if other.wildcard and _under(domain, other):
            return True
    return False


def _squid_under(value: str, wildcard: EgressDomain) -> bool:
    if not wildcard.wildcard:
        return False
    name = value.lstrip(".")
    return name == wildcard.domain or name.endswith(f".{wildcard.domain}")


def _acl_name(list_name: str, feature: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", feature.lower()).strip("_")
    return f"carto_{list_name}_{slug}"
