"""``carto-proxy env``: write the ``.env`` block (or Helm ``externalProxy`` values).

From ``--proxy URL`` and friends, or by converting the configuration source. The ``.env``
block is :meth:`ProxyConfig.to_env`, laid out as CARTO's "Configure an external proxy" page
shows it: both cases, ``GRPC_PROXY`` only for an ``http://`` proxy. Read back with
``ProxyConfig.from_env_file`` (or ``from_helm_values``) it gives the same configuration. Notes
for people go to standard error, so the output can be redirected into a file as it is. Never
touches the network.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from carto_proxy import _env, _tls
from carto_proxy._config import ProxyConfig
from carto_proxy._diagnostics import tool_names
from carto_proxy._env import format_dotenv
from carto_proxy._helm import format_values, helm_values
from carto_proxy._no_proxy import NoProxy
from carto_proxy._portable import Portable, portable
from carto_proxy._proxy_url import parse_proxy
from carto_proxy._routing import Action, Rule
from carto_proxy._target import Protocol
from carto_proxy._warehouses import Warehouse
from carto_proxy.cli._check import finding_json
from carto_proxy.cli._shared import (
    EXIT_OK,
    AddCommand,
    Source,
    UsageError,
    emit,
    emit_json,
    readable_file,
)
from carto_proxy.exceptions import ConfigError

__all__ = ["register", "run"]

_SNOWFLAKE_EXCLUSION = ".snowflakecomputing.com"
_CLUSTER_EXCLUSION = ".svc.cluster.local"


def register(add: AddCommand) -> None:
    """Add the ``env`` command."""
    parser = add(
        "env",
        run,
        help="write the .env block (or Helm values) for a proxy",
        description="Write CARTO's .env block for --proxy URL (or convert the configuration "
        "source), both cases, as CARTO's page shows it; --format helm writes the "
        "externalProxy values instead.",
    )
    parser.add_argument("--proxy", metavar="URL", help="the proxy, http://host:port or https://")
    parser.add_argument(
        "--no-proxy",
        metavar="LIST",
        action="append",
        default=[],
        help="domains to exclude, comma-separated (repeatable)",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="the proxy's CA (PEM); for .env, the path CARTO reads it from",
    )
    parser.add_argument(
        "--no-verify-proxy",
        action="store_true",
        help="do not verify the https:// proxy's certificate (NODE_TLS_REJECT_UNAUTHORIZED=0)",
    )
    parser.add_argument(
        "--warehouses",
        metavar="LIST",
        default="",
        help="warehouses in use, e.g. snowflake,bigquery: adds the exclusions they need",
    )
    parser.add_argument(
        "--portable",
        action="store_true",
        help="write NO_PROXY so that Go, curl, urllib, requests, httpx, proxy-from-env, undici "
        "and gRPC all read it as carto_proxy does wherever a spelling can; list what cannot "
        "be on standard error",
    )
    parser.add_argument("--format", choices=("env", "helm"), default="env")


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``env``; return the exit status."""
    helm = args.format == "helm"
    if args.proxy is not None:
        if source.given:
            raise UsageError("--proxy writes a new configuration; drop --env-file/--helm-values")
        config = _from_proxy(args.proxy)
    else:
        config = source.config(ca="defer")  # the CA file may exist only where CARTO runs
        if not config.has_proxy:
            raise UsageError("no proxy is configured in the source; give --proxy URL")
    config = _exclude(config, _split(args.no_proxy))
    config = _for_warehouses(config, _warehouses(args.warehouses))
    config, ca_path = _with_ca(config, args.ca, helm=helm)
    if args.no_verify_proxy:
        config = dataclasses.replace(config, verify_proxy=False)
    if helm and config.route(f"any.{_CLUSTER_EXCLUSION[1:]}").rule is not Rule.NO_PROXY:
        config = _exclude(config, [_CLUSTER_EXCLUSION])
        _note(f"added {_CLUSTER_EXCLUSION}: CARTO's Helm guide says it must be excluded")
    report = None
    if args.portable:
        report = portable(config)
        config = report.config
        _portability_notes(report)
    if helm:
        try:
            values = helm_values(config.to_env(), ca_pem=config.extra_ca_pem)
        except ConfigError as error:
            raise UsageError(f"{error.problem}; {error.fix}") from None
        _print(values, format_values, "values", report, as_json=args.json)
        return EXIT_OK
    if config.extra_ca_pem and ca_path is None:
        _note(
            "the CA is given inline; .env can only name a file: add --ca PATH (where the PEM "
            "will be) to write NODE_EXTRA_CA_CERTS"
        )
    _print(config.to_env(ca_path=ca_path), format_dotenv, "variables", report, as_json=args.json)
    return EXIT_OK


def _print(
    written: Any,
    formatted: Callable[[Any], str],
    key: str,
    report: Portable | None,
    *,
    as_json: bool,
) -> None:
    """The block for people, or JSON: *written* itself, or with ``--portable`` an object that
    also holds the rewrites and what is not portable."""
    if not as_json:
        emit(formatted(written))
    elif report is None:
        emit_json(written)
    else:
        emit_json(
            {
                key: written,
                "rewrites": [r._asdict() | {"now": list(r.now)} for r in report.rewrites],
                "not_portable": [finding_json(d) for d in report.not_portable],
            }
        )


def _portability_notes(report: Portable) -> None:
    for rewrite in report.rewrites:
        what, codes = f"{rewrite.variable} entry {rewrite.entry!r}", ", ".join(rewrite.codes)
        if not rewrite.now:
            _note(f"--portable dropped {what} ({codes}): {rewrite.why}")
            continue
        readers = f"; {tool_names(rewrite.tools)} read it otherwise" if rewrite.tools else ""
        _note(f"--portable wrote {what} as {','.join(rewrite.now)!r} ({codes}{readers})")
    for finding in report.not_portable:
        about = finding.variable or ""
        if finding.entry is not None:
            about += f" entry {finding.entry!r}"
        emit(f"not portable: {about} ({finding.code}): {finding.message}", stream=sys.stderr)


def _note(text: str) -> None:
    emit(f"note: {text}", stream=sys.stderr)


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _from_proxy(value: str) -> ProxyConfig:
    try:
        parsed = parse_proxy(value, variable="--proxy")
    except ConfigError as error:
        raise UsageError(str(error)) from None
    url = parsed.url
    if parsed.scheme_assumed or parsed.port_assumed:
        _note(f"--proxy {value!r} read as {url} (CARTO writes http(s)://<hostname>:<port>)")
    # CARTO's page sets GRPC_PROXY for an http:// proxy only: gRPC cannot use an https:// one.
    return ProxyConfig(http_proxy=url, https_proxy=url, grpc_proxy=None if url.is_tls else url)


def _exclude(config: ProxyConfig, entries: Sequence[str]) -> ProxyConfig:
    if not entries:
        return config
    unique: dict[str, str] = {}
    for entry in (*config.no_proxy.entries, *entries):
        unique.setdefault(entry.lower(), entry)  # the first spelling wins
    return dataclasses.replace(config, no_proxy=NoProxy.parse(list(unique.values())))


def _warehouses(text: str) -> list[Warehouse]:
    found = []
    for name in _split([text]):
        try:
            found.append(Warehouse(name.lower()))
        except ValueError:
            choices = ", ".join(w.value for w in Warehouse)
            raise UsageError(f"--warehouses: {name!r} is not one of {choices}") from None
    return found


def _for_warehouses(config: ProxyConfig, warehouses: Sequence[Warehouse]) -> ProxyConfig:
    for warehouse in warehouses:
        if warehouse is Warehouse.SNOWFLAKE:
            route = config.route("account.snowflakecomputing.com")
            if route.rule is Rule.WAREHOUSE_HTTPS_UNSUPPORTED:
                config = _exclude(config, [_SNOWFLAKE_EXCLUSION])
                _note(
                    f"added {_SNOWFLAKE_EXCLUSION}: Snowflake cannot use an https:// proxy; "
                    "the firewall must allow direct egress to it"
                )
        elif warehouse is Warehouse.BIGQUERY:
            route = config.route("bigquerystorage.googleapis.com:443", protocol=Protocol.GRPC)
            if route.action is Action.DIRECT and route.needs_direct_egress:
                _note(
                    "the BigQuery Storage API (gRPC) cannot use an https:// proxy: the firewall "
                    "must allow direct egress to bigquerystorage.googleapis.com:443"
                )
        elif warehouse is Warehouse.DATABRICKS:
            _note("Databricks bypasses the proxy: the firewall must allow direct egress to it")
        else:
            port = 5432 if warehouse is Warehouse.POSTGRESQL else 5439
            _note(
                f"{warehouse.value} uses TCP and bypasses the proxy: the firewall must allow "
                f"direct egress to port {port}"
            )
    return config


def _with_ca(
    config: ProxyConfig, path: str | None, *, helm: bool
) -> tuple[ProxyConfig, str | None]:
    """The configuration with its CA read where it can be, and the path ``.env`` names.

    ``--ca`` wins over the source's ``NODE_EXTRA_CA_CERTS``. A file that is not on this
    machine is named as it is (CARTO reads it where it runs), but Helm values need its PEM.
    """
    if path is None:
        path = config.extra_ca_file
        if path is None or config.extra_ca_pem is not None:
            return config, path
        if os.path.isfile(path):  # a refused file is the source's error: ConfigError, exit 1
            return dataclasses.replace(config, extra_ca_pem=config.extra_ca_certs()), path
        return _ca_elsewhere(config, _env.EXTRA_CA, path, helm=helm), path
    if not readable_file("--ca", path, missing_ok=True):
        return _ca_elsewhere(config, "--ca", path, helm=helm), path
    try:
        pem = _tls.load_ca_file(path, variable="--ca")
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return dataclasses.replace(config, extra_ca_file=path, extra_ca_pem=pem), path


def _ca_elsewhere(config: ProxyConfig, option: str, path: str, *, helm: bool) -> ProxyConfig:
    if helm:
        raise UsageError(
            f"{option} {path}: no such file here, and Helm values carry the PEM itself: run "
            "this where the file is, or give --ca FILE"
        )
    _note(f"{option} {path} does not exist here: make sure CARTO finds the PEM at that path")
    return dataclasses.replace(config, extra_ca_file=None, extra_ca_pem=None)
