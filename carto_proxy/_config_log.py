"""What the ``carto_proxy.config`` logger says when a named constructor reads a configuration.

INFO: where the configuration came from, which variable each setting was read from (the case
that won) and what it holds. WARNING: each finding of severity ``warning`` that
:func:`~carto_proxy.check` would report (the two cases differ, a scheme or port was assumed,
a NO_PROXY entry is ignored...), once per process, since reading the configuration accepts
them without a word. Nothing is computed unless the logger is enabled for the level.

No record holds a password, user information or a query: values come from the parsed
configuration (which refuses credentials), and findings are scrubbed of user information.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from ._env import CASE_PAIRS, Setting, Sources
from ._proxy_url import redact, scrub

if TYPE_CHECKING:
    import logging

    from ._config import ProxyConfig

__all__ = ["log_config", "summary"]

LOGGER = "carto_proxy.config"

_SHOWN_ENTRIES = 8
_WARNED_LIMIT = 1024

_lock = threading.Lock()
_warned: set[str] = set()


def log_config(config: ProxyConfig) -> None:
    """Log how *config* was read (INFO) and what it accepted that deserves a WARNING."""
    sources = config.sources
    # A process that never imported logging has configured no handler that could show these
    # records: importing it (8 ms) would only feed the NullHandler below.
    module = sys.modules.get("logging")
    if sources is None or module is None:
        return
    log = _logger(module)
    if log.isEnabledFor(module.INFO):
        log.info(summary(config, sources))
    if log.isEnabledFor(module.WARNING):
        _warn(log, config)


def _logger(module: Any) -> logging.Logger:
    log: logging.Logger = module.getLogger(LOGGER)
    if not log.handlers:
        log.addHandler(module.NullHandler())  # silent unless the application configures logging
    return log


def summary(config: ProxyConfig, sources: Sources) -> str:
    """One line: the source, and each setting with the variable it was read from."""
    parts = [_setting(sources.get(name), config) for name in CASE_PAIRS]
    shown = [part for part in parts if part]
    if config.extra_ca_file:
        shown.append(f"NODE_EXTRA_CA_CERTS={config.extra_ca_file}")
    elif config.extra_ca_pem:
        shown.append("an inline CA")
    if not config.verify_proxy:
        shown.append("the proxy's certificate is not verified (NODE_TLS_REJECT_UNAUTHORIZED=0)")
    settings = "; ".join(shown) or "no proxy variable set"
    return f"ProxyConfig read from {_origin(sources)}: {settings}"


def _origin(sources: Sources) -> str:
    return "the environment" if sources.origin == "environment" else sources.origin


def _setting(setting: Setting, config: ProxyConfig) -> str:
    if setting.value is None:
        return ""
    name = setting.name
    value = {
        "HTTP_PROXY": config.http_proxy,
        "HTTPS_PROXY": config.https_proxy,
        "GRPC_PROXY": config.grpc_proxy,
    }.get(name)
    if name in ("NO_PROXY", "NO_GRPC_PROXY"):
        shown = _entries(setting.value)
    elif value is None:
        shown = "(refused)"
    else:
        shown = str(value)  # a ProxyURL: never user information
    other = setting.upper if setting.source == name.lower() else setting.lower
    winner = f"from {setting.source}"
    if other is not None and other.strip():
        same = other.strip() == setting.value
        loser = name if setting.source == name.lower() else name.lower()
        winner += f"; {loser} {'has the same value' if same else 'differs and is ignored'}"
    return f"{name}={shown} ({winner})"


def _entries(value: str) -> str:
    entries = [redact(entry.strip(), keep_user=False) for entry in value.split(",")]
    entries = [entry for entry in entries if entry]
    head = ",".join(entries[:_SHOWN_ENTRIES])
    more = len(entries) - _SHOWN_ENTRIES
    return f"{head},… ({len(entries)} entries)" if more > 0 else head


def _warn(log: logging.Logger, config: ProxyConfig) -> None:
    # Imported on first use: importing the diagnostics (a dozen modules) would add about 2 ms
    # to `from carto_proxy import ProxyConfig`.
    from ._codes import Severity
    from ._diagnostics import diagnose

    origin = _origin(config.sources) if config.sources else "a configuration"
    for finding in diagnose(config, ca="defer"):  # never read a deferred CA file here
        if finding.severity is not Severity.WARNING:
            continue
        text = scrub(str(finding), keep_user=False)
        with _lock:
            if text in _warned:
                continue
            if len(_warned) >= _WARNED_LIMIT:
                _warned.clear()
            _warned.add(text)
        log.warning("%s (read from %s)", text, origin, extra={"carto_proxy_code": finding.code})
