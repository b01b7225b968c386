"""check(): every finding about a configuration, each with a stable code.

The findings themselves live by subject: ``_proxies`` (CP1xx), ``_exclusions`` (CP2xx),
``_metadata`` (CP205), ``_trust`` (CP3xx); their codes and severities are in
:mod:`carto_proxy._codes`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from carto_proxy import _env, _helm
from carto_proxy._config import CALoading, ProxyConfig, build
from carto_proxy.exceptions import ConfigError

from ._diagnostic import Diagnostic, from_error, sort_findings
from ._exclusions import exclusion_findings
from ._metadata import metadata_findings
from ._proxies import losing_case_findings, proxy_findings, variable_findings
from ._trust import trust_findings

__all__ = ["check", "diagnose"]


def check(
    config: ProxyConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    helm_values: str | os.PathLike[str] | None = None,
    ca: CALoading = "load",
) -> list[Diagnostic]:
    """Return every finding about a configuration, errors first, then by code.

    Give a built *config*, or one source to read (*environ*, *env_file* or *helm_values*);
    with nothing, ``os.environ`` is read. Reading a source never raises for a bad value: each
    refused value becomes an ``error`` finding. A source that cannot be read at all (a missing
    file) still raises :class:`~carto_proxy.ConfigError`.

    With ``ca="load"`` the ``NODE_EXTRA_CA_CERTS`` file is read and validated (``CP305`` when
    it cannot be used), also for a *config* built with ``ca="defer"``; with ``ca="defer"`` it
    is not read, because it is checked on the machine that has it (one ``CP307`` info).

    >>> [d.code for d in check(environ={"HTTPS_PROXY": "http://user:pw@proxy:3128"})]
    ['CP106', 'CP101', 'CP102']
    """
    if config is not None:
        return diagnose(config, ca=ca)
    try:
        if env_file is not None:
            sources = _env.read_env_file(env_file)
        elif helm_values is not None:
            sources = _helm.read_helm_values(helm_values)
        else:
            sources = _env.read_environ(environ)
    except ConfigError as error:
        if error.code != _helm.HELM_CODE:
            raise  # the file itself cannot be read
        return [from_error(error)]
    errors: list[ConfigError] = []
    return diagnose(build(sources, errors, ca=ca), errors, ca=ca)


def diagnose(
    config: ProxyConfig, errors: Iterable[ConfigError] = (), *, ca: CALoading = "load"
) -> list[Diagnostic]:
    """The findings about a built *config*, and about the *errors* building it collected.

    *ca* is as for :func:`check`.
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
