"""The only place carto_proxy reads its sources: an environment mapping, a ``.env`` file or
CARTO Helm values. Everything after this module is pure and receives :class:`Sources`.

Precedence (DESIGN §3.1): for each name the lowercase variable wins if it is set and not
blank, else the UPPERCASE one if not blank, else the name is unset. Under CGI
(``REQUEST_METHOD`` set) the uppercase ``HTTP_PROXY`` is ignored, since a client can set it
through the ``Proxy:`` request header (httpoxy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from .exceptions import ConfigError, MissingExtraError

__all__ = [
    "CASE_PAIRS",
    "Setting",
    "Sources",
    "read_env_file",
    "read_environ",
    "read_helm_values",
]

CASE_PAIRS = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "NO_PROXY", "NO_GRPC_PROXY")
EXTRA_CA = "NODE_EXTRA_CA_CERTS"
REJECT_UNAUTHORIZED = "NODE_TLS_REJECT_UNAUTHORIZED"
HELM_CODE = "CP112"  # a Helm value carto_proxy cannot use


class Setting(NamedTuple):
    """One variable read in both cases, and the value that counts."""

    name: str  # canonical (UPPERCASE) name
    lower: str | None = None  # raw value of the lowercase variable, None when not set
    upper: str | None = None  # raw value of the UPPERCASE variable, None when not set
    value: str | None = None  # the value that counts, stripped; None when unset
    source: str | None = None  # the variable it came from, e.g. "https_proxy"
    cgi_ignored: bool = False  # uppercase HTTP_PROXY dropped because REQUEST_METHOD is set


class Sources(NamedTuple):
    """Everything read from one source, before any value is parsed."""

    origin: str = "environment"
    settings: Mapping[str, Setting] = {}  # a shared default, never mutated
    extra_ca_certs: str | None = None  # NODE_EXTRA_CA_CERTS (a path)
    reject_unauthorized: str | None = None  # NODE_TLS_REJECT_UNAUTHORIZED
    all_proxy: Setting = Setting(name="ALL_PROXY")
    cgi: bool = False
    inline_ca: str | None = None  # PEM given inline (Helm trustedCACerts.value / sslCA)
    from_helm: bool = False

    def get(self, name: str) -> Setting:
        """Return the setting for one of :data:`CASE_PAIRS`."""
        return self.settings.get(name) or Setting(name=name)


def read_environ(
    environ: Mapping[str, str] | None = None, *, origin: str = "environment"
) -> Sources:
    """Read the proxy variables from *environ* (``os.environ`` when ``None``)."""
    env = os.environ if environ is None else environ
    cgi = "REQUEST_METHOD" in env
    settings = {name: _pick(env, name, cgi=cgi) for name in CASE_PAIRS}
    return Sources(
        origin=origin,
        settings=settings,
        extra_ca_certs=_blank_is_unset(env.get(EXTRA_CA)),
        reject_unauthorized=_blank_is_unset(env.get(REJECT_UNAUTHORIZED)),
        all_proxy=_pick(env, "ALL_PROXY", cgi=False),
        cgi=cgi,
    )


def read_env_file(path: str | os.PathLike[str]) -> Sources:
    """Read a docker-compose style ``.env`` file (quotes, comments, ``export``).

    Raises:
        ConfigError: the file cannot be read.
    """
    from dotenv import dotenv_values  # core dependency, but only this path needs it

    _require_file(path, ".env file")
    try:
        parsed = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            ".env file",
            os.fspath(path),
            f"cannot be read as UTF-8 text ({error.__class__.__name__})",
            "give the path of a docker-compose style .env file",
        ) from None
    values = {k: v for k, v in parsed.items() if v is not None}
    return read_environ(values, origin=f".env file {os.fspath(path)}")


def read_helm_values(path: str | os.PathLike[str]) -> Sources:
    """Read CARTO Helm values (``externalProxy.*``, ``trustedCACerts.value``).

    Mirrors the chart: the URL is ``connectionString``, else ``<type>://<host>:<port>``, set
    for HTTP, HTTPS and gRPC in both cases while ``enabled``; ``excludedDomains`` items are
    joined with commas (an item may itself hold several); inline CAs from
    ``trustedCACerts.value`` (always) and the deprecated ``externalProxy.sslCA`` (only while
    enabled) are concatenated.

    Raises:
        ConfigError: the file cannot be read or a value has the wrong shape.
        MissingExtraError: PyYAML is not installed (extra ``helm``).
    """
    try:
        import yaml
    except ImportError as error:
        raise MissingExtraError("helm", "yaml") from error
    _require_file(path, "Helm values")
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(
            "Helm values",
            os.fspath(path),
            f"not valid YAML ({error})",
            "fix the YAML syntax",
            code=HELM_CODE,
        ) from None
    values = document if isinstance(document, dict) else {}
    proxy = _section(values, "externalProxy")
    env: dict[str, str] = {}
    enabled = _flag(proxy, "enabled", default=False)
    if enabled:
        url = _helm_url(proxy)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY"):
            env[name] = env[name.lower()] = url
        env[REJECT_UNAUTHORIZED] = "1" if _flag(proxy, "sslRejectUnauthorized", True) else "0"
        excluded = proxy.get("excludedDomains") or []
        if not isinstance(excluded, list) or not all(isinstance(d, str) for d in excluded):
            raise _helm_error("externalProxy.excludedDomains", excluded, "a list of strings")
        if excluded:
            env["NO_PROXY"] = env["no_proxy"] = ",".join(excluded)
    cas = [_string(_section(values, "trustedCACerts"), "value", "trustedCACerts.value")]
    if enabled:
        cas.append(_string(proxy, "sslCA", "externalProxy.sslCA"))
    inline = "\n".join(ca.strip() for ca in cas if ca.strip()) or None
    sources = read_environ(env, origin=f"Helm values {os.fspath(path)}")
    return Sources(
        origin=sources.origin,
        settings=sources.settings,
        reject_unauthorized=sources.reject_unauthorized,
        inline_ca=inline,
        from_helm=True,
    )


def _pick(env: Mapping[str, str], name: str, *, cgi: bool) -> Setting:
    lower, upper = env.get(name.lower()), env.get(name)
    cgi_ignored = cgi and name == "HTTP_PROXY" and upper is not None
    candidates = ((name.lower(), lower), (name, None if cgi_ignored else upper))
    for source, raw in candidates:
        value = _blank_is_unset(raw)
        if value is not None:
            return Setting(
                name=name,
                lower=lower,
                upper=upper,
                value=value,
                source=source,
                cgi_ignored=cgi_ignored,
            )
    return Setting(name=name, lower=lower, upper=upper, cgi_ignored=cgi_ignored)


def _blank_is_unset(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def _require_file(path: str | os.PathLike[str], what: str) -> None:
    try:
        if os.path.isfile(path):
            return
        problem = "does not exist or is not a regular file"
    except (OSError, ValueError) as error:
        problem = f"cannot be read ({error})"
    raise ConfigError(what, os.fspath(path), problem, "give the path of an existing file")


def _section(values: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = values.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise _helm_error(key, section, "a mapping")
    return section


def _flag(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise _helm_error(f"externalProxy.{key}", value, "true or false")


def _string(values: Mapping[str, Any], key: str, name: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _helm_error(name, value, "a string")
    return str(value)


def _helm_url(proxy: Mapping[str, Any]) -> str:
    connection = _string(proxy, "connectionString", "externalProxy.connectionString").strip()
    if connection:
        return connection
    kind = _string(proxy, "type", "externalProxy.type").strip().lower()
    if kind not in {"http", "https"}:
        raise ConfigError(
            "externalProxy.type",
            kind,
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


def _helm_error(name: str, value: object, expected: str) -> ConfigError:
    return ConfigError(
        name,
        repr(value)[:80],
        f"must be {expected}",
        f"write {name} as {expected}",
        code=HELM_CODE,
    )
