"""check(): read a source (or take a built configuration) and return every finding about it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import _env, _helm
from ._config import CALoading, ProxyConfig, build
from ._diagnostics import Diagnostic, diagnose, from_error
from .exceptions import ConfigError

__all__ = ["check", "check_sources"]


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
    ['CP106', 'CP102']
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
    return check_sources(sources, ca=ca)[1]


def check_sources(
    sources: _env.Sources, *, ca: CALoading = "load"
) -> tuple[ProxyConfig, list[Diagnostic]]:
    """Build a configuration from variables already read, as :func:`check` does (each refused
    value a finding, treated as unset); return it and its findings."""
    errors: list[ConfigError] = []
    config = build(sources, errors, ca=ca)
    return config, diagnose(config, errors, ca=ca)
