"""CARTO Helm values (``externalProxy.*``, ``trustedCACerts.value``): read and write.

Reading mirrors the chart: the proxy URL is ``connectionString``, else
``<type>://<host>:<port>``, set for HTTP, HTTPS and gRPC in both cases while ``enabled``;
``excludedDomains`` items are joined with commas (an item may itself hold several); inline CAs
from ``trustedCACerts.value`` (always) and the deprecated ``externalProxy.sslCA`` (only while
enabled) are concatenated. The result is the environment the chart gives CARTO's services, read
by :mod:`carto_proxy._env` like any other.

Writing is the inverse: the variables :meth:`ProxyConfig.to_env` gives, as the values that make
the chart set them. Both need PyYAML (extra ``helm``), through :mod:`carto_proxy._yaml`, which
refuses alias bombs and deep nesting. No message quotes a value: a wrong-typed value is
described by its type, a string with user information masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ._env import REJECT_UNAUTHORIZED, Sources, read_environ, require_file
from ._proxy_url import parse_proxy, redact
from .exceptions import ConfigError, MissingExtraError

__all__ = ["HELM_CODE", "format_values", "helm_values", "read_helm_values"]

HELM_CODE = "CP112"  # a Helm value carto_proxy cannot use
_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY")


def read_helm_values(path: str | os.PathLike[str]) -> Sources:
    """Read CARTO Helm values into :class:`~carto_proxy._env.Sources`.

    Raises:
        ConfigError: the file cannot be read, or a value has the wrong shape (CP112).
        MissingExtraError: PyYAML is not installed (extra ``helm``).
    """
    bounded = _yaml_module()
    require_file(path, "Helm values")
    try:
        with open(path, encoding="utf-8") as file:
            document = bounded.load(file)
    except (bounded.Refused, UnicodeDecodeError) as error:
        raise ConfigError(
            "Helm values",
            os.fspath(path),
            str(error) if isinstance(error, bounded.Refused) else "not UTF-8 text",
            "fix the YAML; write Helm values without deep nesting or aliases that multiply",
            code=HELM_CODE,
        ) from None
    except OSError as error:
        raise ConfigError(
            "Helm values",
            os.fspath(path),
            f"cannot be read ({error.__class__.__name__})",
            "give the path of a readable values file",
        ) from None
    values = document if isinstance(document, dict) else {}
    proxy = _section(values, "externalProxy")
    env: dict[str, str] = {}
    enabled = _flag(proxy, "enabled", default=False)
    if enabled:
        url = _proxy_url(proxy)
        for name in _PROXY_NAMES:
            env[name] = env[name.lower()] = url
        env[REJECT_UNAUTHORIZED] = "1" if _flag(proxy, "sslRejectUnauthorized", True) else "0"
        excluded = proxy.get("excludedDomains") or []
        if not isinstance(excluded, list):
            raise _error("externalProxy.excludedDomains", excluded, "a list of strings")
        for index, item in enumerate(excluded):
            if not isinstance(item, str):
                raise _error(f"externalProxy.excludedDomains[{index}]", item, "a string")
        if excluded:
            env["NO_PROXY"] = env["no_proxy"] = ",".join(excluded)
    cas = [_string(_section(values, "trustedCACerts"), "value", "trustedCACerts.value")]
    if enabled:
        cas.append(_string(proxy, "sslCA", "externalProxy.sslCA"))
    inline = "\n".join(ca.strip() for ca in cas if ca.strip()) or None
    sources = read_environ(env, origin=f"Helm values {os.fspath(path)}")
    return sources._replace(extra_ca_certs=None, inline_ca=inline, from_helm=True)


def helm_values(variables: Mapping[str, str], *, ca_pem: str | None = None) -> dict[str, Any]:
    """The Helm values that make the chart set *variables* (as ``to_env()`` writes them).

    Raises:
        ConfigError: the chart cannot express them: it has one proxy for HTTP, HTTPS and gRPC,
            and no NO_GRPC_PROXY (CP112).
    """
    proxies = {variables[name] for name in _PROXY_NAMES if name in variables}
    if len(proxies) != 1:
        raise ConfigError(
            "Helm values",
            None,
            "the chart has one proxy for HTTP, HTTPS and gRPC; this configuration uses "
            + ("several" if proxies else "none"),
            "use one proxy URL for HTTP_PROXY, HTTPS_PROXY and GRPC_PROXY",
            code=HELM_CODE,
        )
    if "NO_GRPC_PROXY" in variables:
        raise ConfigError(
            "Helm values",
            None,
            "the chart cannot set NO_GRPC_PROXY",
            "put the gRPC exclusions in NO_PROXY",
            code=HELM_CODE,
        )
    proxy = parse_proxy(proxies.pop(), variable="HTTPS_PROXY").url
    section: dict[str, Any] = {"enabled": True}
    if ":" in proxy.host:
        section["connectionString"] = str(proxy)  # the chart's host field takes no brackets
    else:
        section.update(type=proxy.scheme, host=proxy.host, port=proxy.port)
    no_proxy = variables.get("NO_PROXY", "")
    section["excludedDomains"] = [entry for entry in no_proxy.split(",") if entry]
    section["sslRejectUnauthorized"] = variables.get(REJECT_UNAUTHORIZED, "1") != "0"
    values: dict[str, Any] = {"externalProxy": section}
    if ca_pem:
        values["trustedCACerts"] = {"value": ca_pem}
    return values


def format_values(values: Mapping[str, Any]) -> str:
    """*values* as YAML, PEM blocks as literal (``|``) scalars, keys in their order."""
    dumped: str = _yaml_module().dump(values)
    return dumped


def _yaml_module() -> ModuleType:
    try:
        from . import _yaml
    except ImportError as error:
        raise MissingExtraError("helm", "yaml") from error
    return _yaml


def _section(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = values.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise _error(key, section, "a mapping")
    return section


def _flag(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise _error(f"externalProxy.{key}", value, "true or false")


def _string(values: Mapping[str, Any], key: str, name: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _error(name, value, "a string")
    return str(value)


def _proxy_url(proxy: Mapping[str, Any]) -> str:
    connection = _string(proxy, "connectionString", "externalProxy.connectionString").strip()
    if connection:
        return connection
    written = _string(proxy, "type", "externalProxy.type").strip()
    kind = written.lower()
    if kind not in {"http", "https"}:
        raise ConfigError(
            "externalProxy.type",
            redact(written)[:80],
            "only HTTP and HTTPS proxies are supported",
            "set externalProxy.type to http or https",
            code=HELM_CODE,
        )
    host = _string(proxy, "host", "externalProxy.host").strip()
    port = _string(proxy, "port", "externalProxy.port").strip()
    if not host or not port:
        missing = "externalProxy.host" if not host else "externalProxy.port"
        raise ConfigError(
            missing,
            None,
            "is required when externalProxy.enabled is true",
            f"set {missing}, or externalProxy.connectionString",
            code=HELM_CODE,
        )
    return f"{kind}://{host}:{port}"


def _error(name: str, value: object, expected: str) -> ConfigError:
    """A wrong-typed value, described by its type; a string only with user info masked.

    Never ``repr(value)``: a list may hold a password, and the repr of a structure built from
    aliases can be gigabytes long.
    """
    shown = redact(value)[:80] if isinstance(value, str) else None
    problem = f"must be {expected}, not {_kind(value)}"
    return ConfigError(name, shown, problem, f"write {name} as {expected}", code=HELM_CODE)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "this text"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a mapping"
    return f"a YAML {type(value).__name__}"
