"""The warehouse rules CARTO Self-hosted documents, as data, and host detection.

From "Configure an external proxy", *Support for data warehouses*: BigQuery works through HTTP
and HTTPS proxies; PostgreSQL and Redshift use TCP and bypass the proxy; Databricks does not
support the proxy and bypasses it; Snowflake works through an HTTP proxy, but an HTTPS proxy must
be bypassed (``.snowflakecomputing.com`` in NO_PROXY).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["RULES", "Warehouse", "WarehouseRule", "detect"]


class Warehouse(str, enum.Enum):
    """A data warehouse CARTO Self-hosted connects to."""

    BIGQUERY = "bigquery"
    SNOWFLAKE = "snowflake"
    POSTGRESQL = "postgresql"
    REDSHIFT = "redshift"
    DATABRICKS = "databricks"

    def __str__(self) -> str:
        return self.value


class WarehouseRule(NamedTuple):
    """How one warehouse may reach the network, as CARTO documents it."""

    warehouse: Warehouse
    label: str
    tcp: bool  # a TCP protocol, never an HTTP(S) proxy
    via_http_proxy: bool  # works through an http:// proxy
    via_https_proxy: bool  # works through an https:// proxy
    documented: str  # CARTO's sentence
    hosts: tuple[str, ...] = ()  # exact host names
    domains: tuple[str, ...] = ()  # the domain and its subdomains


RULES: dict[Warehouse, WarehouseRule] = {
    rule.warehouse: rule
    for rule in (
        WarehouseRule(
            warehouse=Warehouse.BIGQUERY,
            label="BigQuery",
            tcp=False,
            via_http_proxy=True,
            via_https_proxy=True,
            documented="It supports both HTTP and HTTPS proxy.",
            hosts=("bigquery.googleapis.com", "bigquerystorage.googleapis.com"),
        ),
        WarehouseRule(
            warehouse=Warehouse.SNOWFLAKE,
            label="Snowflake",
            tcp=False,
            via_http_proxy=True,
            via_https_proxy=False,
            documented=(
                "It supports HTTP proxy, but HTTPS is not supported and will have to be bypassed."
            ),
            domains=("snowflakecomputing.com",),
        ),
        WarehouseRule(
            warehouse=Warehouse.POSTGRESQL,
            label="PostgreSQL",
            tcp=True,
            via_http_proxy=False,
            via_https_proxy=False,
            documented="It uses a TCP connection instead of HTTP(S), so the proxy is bypassed.",
        ),
        WarehouseRule(
            warehouse=Warehouse.REDSHIFT,
            label="Redshift",
            tcp=True,
            via_http_proxy=False,
            via_https_proxy=False,
            documented="It uses a TCP connection instead of HTTP(S), so the proxy is bypassed.",
            domains=("redshift.amazonaws.com", "redshift-serverless.amazonaws.com"),
        ),
        WarehouseRule(
            warehouse=Warehouse.DATABRICKS,
            label="Databricks",
            tcp=False,
            via_http_proxy=False,
            via_https_proxy=False,
            documented="Proxy is not supported, so the HTTPS connection will be bypassed.",
            domains=("cloud.databricks.com", "azuredatabricks.net", "gcp.databricks.com"),
        ),
    )
}

_HOSTS = {host: rule.warehouse for rule in RULES.values() for host in rule.hosts}
_DOMAINS = {domain: rule.warehouse for rule in RULES.values() for domain in rule.domains}
_DOTTED = tuple(f".{domain}" for domain in _DOMAINS)


def detect(host: str) -> Warehouse | None:
    """Return the warehouse a normalised host name belongs to, if it is a known one."""
    found = _HOSTS.get(host) or _DOMAINS.get(host)
    if found is not None or not host.endswith(_DOTTED):  # one C call rules most hosts out
        return found
    for dotted in _DOTTED:
        if host.endswith(dotted):
            return _DOMAINS[dotted[1:]]
    return None  # pragma: no cover - endswith() said one matches
