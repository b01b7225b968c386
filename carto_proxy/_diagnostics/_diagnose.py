"""diagnose(): every finding about a built configuration, each with a stable code.

The findings themselves live by subject: ``_proxies`` (CP1xx), ``_exclusions`` (CP2xx),
``_metadata`` (CP205), ``_trust`` (CP3xx); their codes and severities are in
:mod:`carto_proxy._codes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from carto_proxy.exceptions import ConfigError

from ._diagnostic import Diagnostic, from_error, sort_findings
from ._exclusions import exclusion_findings
from ._metadata import metadata_findings
from ._proxies import losing_case_findings, proxy_findings, variable_findings
from ._trust import trust_findings

if TYPE_CHECKING:  # the diagnostics read a built configuration; they never build one
    from carto_proxy._config import CALoading, ProxyConfig

__all__ = ["diagnose"]


def diagnose(
    config: ProxyConfig, errors: Iterable[ConfigError] = (), *, ca: CALoading = "load"
) -> list[Diagnostic]:
    """The findings about a built *config*, and about the *errors* building it collected.

    *ca* is as for :func:`carto_proxy.check`.
    """
    errors = list(errors)
    found = [from_error(error) for error in errors]
    if config.sources is not None:
        found += variable_findings(config.sources)
        found += losing_case_findings(config.sources)
    found += proxy_findings(config, errors)
    found += exclusion_findings(config)
    found += metadata_findings(config)
    found += trust_findings(config, ca=ca)
    return sort_findings(found)
