"""The only place carto_proxy reads the environment: a mapping (``os.environ``) or a ``.env``
file, and the writer of ``.env`` files. Helm values are read into the same :class:`Sources` by
:mod:`carto_proxy._helm`. Everything after these is pure and receives :class:`Sources`.

Precedence (DESIGN §3.1): for each name the lowercase variable wins if it is set and not
blank, else the UPPERCASE one if not blank, else the name is unset. Under CGI
(``REQUEST_METHOD`` set and not blank) the uppercase ``HTTP_PROXY`` is ignored, since a client
can set it through the ``Proxy:`` request header (httpoxy). A blank ``REQUEST_METHOD`` is unset
like any other variable: CGI always sets a method, and Go's guard also wants one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from ._proxy_url import redact, redact_list
from .exceptions import ConfigError

__all__ = [
    "CASE_PAIRS",
    "EXTRA_CA",
    "REJECT_UNAUTHORIZED",
    "Setting",
    "Sources",
    "format_dotenv",
    "read_env_file",
    "read_environ",
    "require_file",
]

CASE_PAIRS = ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "NO_PROXY", "NO_GRPC_PROXY")
EXTRA_CA = "NODE_EXTRA_CA_CERTS"
REJECT_UNAUTHORIZED = "NODE_TLS_REJECT_UNAUTHORIZED"


class Setting(NamedTuple):
    """One variable read in both cases, and the value that counts."""

    name: str  # canonical (UPPERCASE) name
    lower: str | None = None  # raw value of the lowercase variable, None when not set
    upper: str | None = None  # raw value of the UPPERCASE variable, None when not set
    value: str | None = None  # the value that counts, stripped; None when unset
    source: str | None = None  # the variable it came from, e.g. "https_proxy"
    cgi_ignored: bool = False  # uppercase HTTP_PROXY dropped because REQUEST_METHOD is set

    def shown(self, raw: str) -> str:
        """*raw*, a value of this variable, with user information masked."""
        return redact_list(raw) if self.name.startswith("NO_") else redact(raw)

    def __repr__(self) -> str:
        values = ", ".join(
            f"{field}={None if value is None else self.shown(value)!r}"
            for field, value in zip(("lower", "upper", "value"), self[1:4], strict=True)
        )
        return (
            f"Setting(name={self.name!r}, {values}, source={self.source!r}, "
            f"cgi_ignored={self.cgi_ignored})"
        )


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
    cgi = _blank_is_unset(env.get("REQUEST_METHOD")) is not None
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

    require_file(path, ".env file")
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


def _pick(env: Mapping[str, str], name: str, *, cgi: bool) -> Setting:
    lower, upper = env.get(name.lower()), env.get(name)
    cgi_ignored = cgi and name == "HTTP_PROXY" and upper is not None
    candidates = ((name.lower(), lower), (name, None if cgi_ignored else upper))
    for source, raw in candidates:
        value = _blank_is_unset(raw)
        if value is not None:
            return Setting(name, lower, upper, value, source, cgi_ignored)
    return Setting(name, lower, upper, cgi_ignored=cgi_ignored)


def _blank_is_unset(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def require_file(path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`ConfigError` naming *what* unless *path* is an existing regular file."""
    try:
        if os.path.isfile(path):
            return
        problem = "does not exist or is not a regular file"
    except (OSError, ValueError) as error:
        problem = f"cannot be read ({error})"
    raise ConfigError(what, os.fspath(path), problem, "give the path of an existing file")


# Values written unquoted, as CARTO's page writes NODE_EXTRA_CA_CERTS and friends.
_PLAIN = re.compile(r"[A-Za-z0-9_./-]+")


def format_dotenv(variables: Mapping[str, str]) -> str:
    """Write *variables* as ``.env`` lines that python-dotenv and docker compose read back.

    Paths and flags are written bare, as CARTO's page shows them; anything else is quoted,
    with backslashes and quotes escaped.
    """
    return "\n".join(f"{name}={_dotenv_value(name, value)}" for name, value in variables.items())


def _dotenv_value(name: str, value: str) -> str:
    if name.startswith("NODE_") and _PLAIN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
