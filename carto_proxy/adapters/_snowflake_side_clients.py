"""The Snowflake drivers' own HTTP clients, which no connection parameter routes.

Besides the connection's client, the drivers open connections with clients of their own that
read only the process environment's proxy variables:

* **platform detection** — metadata-server probes at login (AWS IMDS, Azure IMDS, GCP
  metadata; AWS STS when AWS credentials exist). 5.x probes with ``reqwest::Client::new()``
  (environment proxies), once per process, and its only switch is the process variable
  ``SNOWFLAKE_DISABLE_PLATFORM_DETECTION``. 4.x probes Azure and GCP through the connection's
  (routed) sessions but AWS through boto3, whose botocore reads the environment; its switch is
  the connection parameter ``platform_detection_timeout_seconds=0``.
* **CRL downloads** on 5.x (``crl_check_mode``): a process-wide client built with no proxy
  setting (snowflakedb/drivers ``sf_core/src/crl/cache.rs``). 4.x downloads CRLs through the
  connection's sessions, which are routed.

Platform detection is therefore off unless asked for. Where a driver's own client would be
used, it is allowed only when the process environment would send it where the route says
(read with :meth:`ProxyConfig.from_env`, as that client would read it); otherwise the
connection is refused with a :class:`~carto_proxy.ConfigError` (``CP402``) naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._warehouses import Warehouse
from carto_proxy.exceptions import ConfigError

__all__ = ["DETECTION_SWITCH", "close_side_clients"]

DETECTION_SWITCH = "SNOWFLAKE_DISABLE_PLATFORM_DETECTION"
"""The process variable both driver lines read to skip platform detection."""

# What the probes ask for: the metadata server (AWS, Azure, GCP) and AWS STS.
_PROBES_5 = (
    "http://169.254.169.254",
    "http://metadata.google.internal",
    "https://sts.amazonaws.com",
)
# 4.x probes Azure and GCP through the connection's routed sessions: only boto3's are left.
_PROBES_4 = ("http://169.254.169.254", "https://sts.amazonaws.com")
_CRL_ON = frozenset({"enabled", "advisory"})
_ENVIRONMENT_FIX = (
    "give the process environment the same HTTP_PROXY, HTTPS_PROXY and NO_PROXY as the "
    "configuration (for the metadata server: list 169.254.169.254,metadata.google.internal in "
    "NO_PROXY in both)"
)


def close_side_clients(
    config: ProxyConfig, params: dict[str, Any], *, major: int, platform_detection: bool
) -> None:
    """Turn the drivers' own clients off, or check that they follow the route.

    Args:
        config: the configuration.
        params: the driver's parameters; updated in place.
        major: the installed driver's major version.
        platform_detection: the caller opted in to the metadata-server probes.

    Raises:
        ConfigError: (``CP402``) a driver's own client would not follow the route.
    """
    timeout = params.get("platform_detection_timeout_seconds")
    if platform_detection:
        _follows_route(config, _PROBES_5 if major >= 5 else _PROBES_4, "platform_detection=True")
    elif timeout:
        raise _refused(
            f"platform_detection_timeout_seconds={timeout!r}",
            "it turns on the driver's platform detection, whose metadata-server probes do not "
            "follow the connection's proxy settings",
            "remove it, or pass platform_detection=True to opt in",
        )
    elif major >= 5:
        # 5.x has no parameter for it; it reads the variable at the first login of the process.
        os.environ[DETECTION_SWITCH] = "true"
    else:
        params["platform_detection_timeout_seconds"] = 0.0
    mode = str(params.get("crl_check_mode") or "").strip().lower()
    if major >= 5 and mode in _CRL_ON:
        _crl_follows_route(config, f"crl_check_mode={params['crl_check_mode']!r}")


def _follows_route(config: ProxyConfig, urls: Iterable[str], setting: str) -> None:
    environment = _environment(setting)
    for url in urls:
        route = config.route(url, warehouse=Warehouse.SNOWFLAKE)
        would = environment.route(url)
        if would.proxy != route.proxy:
            raise _refused(
                setting,
                f"the driver would reach {url} with a client of its own that reads the process "
                f"environment ({_where(would.proxy)}), not the route ({_where(route.proxy)})",
                f"leave it off (the default), or {_ENVIRONMENT_FIX}",
            )


def _crl_follows_route(config: ProxyConfig, setting: str) -> None:
    """CRL hosts are not known in advance: the environment must route every http:// URL alike."""
    environment = _environment(setting)
    route = config.route("http://carto-proxy-crl.invalid", warehouse=Warehouse.SNOWFLAKE)
    expected = route.proxy
    same = environment.http_proxy == expected and (
        expected is None or environment.no_proxy == config.no_proxy
    )
    if not same:
        raise _refused(
            setting,
            "snowflake-connector-python 5.x downloads CRLs with a client of its own that reads "
            f"the process environment (HTTP_PROXY {_where(environment.http_proxy)}), while the "
            f"connection's route is {_where(expected)}",
            "leave crl_check_mode at DISABLED (5.x's default), or "
            f"{_ENVIRONMENT_FIX}, or use the 4.x driver, whose CRL downloads carto_proxy routes",
        )


def _environment(setting: str) -> ProxyConfig:
    """The process environment's proxies, as the driver's own client would read them."""
    try:
        return ProxyConfig.from_env()
    except ConfigError as error:
        raise _refused(
            setting,
            f"the process environment's proxy variables, which the driver's own client reads, "
            f"are unusable ({error.variable}: {error.problem})",
            f"leave it off (the default), or {_ENVIRONMENT_FIX}",
        ) from error


def _where(proxy: object) -> str:
    return "direct" if proxy is None else f"through {proxy}"


def _refused(setting: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"snowflake.connect({setting})", None, problem, fix, code="CP402")
