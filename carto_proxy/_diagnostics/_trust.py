"""Findings about TLS trust (``CP3xx``): proxy verification and the extra CA."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from carto_proxy.exceptions import ConfigError

from ._diagnostic import Diagnostic, finding, from_error

if TYPE_CHECKING:
    from carto_proxy._config import CALoading, ProxyConfig

__all__ = ["trust_findings"]


def trust_findings(config: ProxyConfig, *, ca: CALoading = "load") -> Iterator[Diagnostic]:
    """NODE_TLS_REJECT_UNAUTHORIZED and NODE_EXTRA_CA_CERTS against the proxy type.

    A CA file whose reading was deferred is read now with ``ca="load"``; with ``ca="defer"``
    one info finding says it was not checked here.
    """
    tls_proxy = any(
        p is not None and p.is_tls
        for p in (config.http_proxy, config.https_proxy, config.grpc_proxy)
    )
    if not config.verify_proxy and tls_proxy:
        yield finding(
            "CP301",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "the proxy's certificate is not verified (carto_proxy still verifies origins; Node "
            "applies the variable to every TLS connection).",
            "give the proxy CA in NODE_EXTRA_CA_CERTS and set NODE_TLS_REJECT_UNAUTHORIZED=1",
        )
    elif not config.verify_proxy:
        yield finding(
            "CP302",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "it only affects https:// proxies, and none is configured.",
            "remove NODE_TLS_REJECT_UNAUTHORIZED=0",
        )
    deferred = config.extra_ca_pem is None and config.extra_ca_file is not None
    if deferred and ca == "defer":
        yield finding(
            "CP307",
            "NODE_EXTRA_CA_CERTS",
            f"the CA file {config.extra_ca_file!r} was not read here: it is checked on the "
            "machine that has it.",
            "run carto-proxy check where the services run to check the file itself",
        )
    elif deferred:
        try:
            config.extra_ca_certs()
        except ConfigError as error:
            yield from_error(error)
            return  # the CA cannot be used: the findings about using it do not apply
    has_ca = bool(config.extra_ca_pem or config.extra_ca_file)
    if has_ca and config.has_proxy and not tls_proxy:
        yield finding(
            "CP303",
            "NODE_EXTRA_CA_CERTS",
            "with an http:// proxy the extra CA is only used to verify origins (useful when the "
            "proxy inspects TLS and re-signs origins).",
            "nothing to do if the proxy re-signs origins; otherwise remove it",
        )
    if has_ca and tls_proxy:
        yield finding(
            "CP304",
            "NODE_EXTRA_CA_CERTS",
            "CARTO does not support importing data through an HTTPS proxy whose certificate is "
            "signed by a custom CA.",
            "use a proxy certificate from a well-known CA, or an http:// proxy, if data imports "
            "are needed",
        )
