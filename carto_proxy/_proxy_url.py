"""ProxyURL: parse and validate a proxy variable's value; redact user information."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from ._hosts import format_authority, parse_host, split_authority
from .exceptions import ConfigError

__all__ = ["ParsedProxy", "ProxyURL", "parse_proxy", "redact", "redact_list", "scrub"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_FORMAT_FIX = "write it as http://<hostname>:<port> or https://<hostname>:<port>"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyURL:
    """A validated proxy address: ``http`` or ``https``, a host and a port, no credentials.

    ``str()`` gives the normalised URL, e.g. ``'http://my-proxy:3128'`` or
    ``'http://[::1]:3128'``.
    """

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, variable: str = "proxy URL") -> ProxyURL:
        """Parse and validate a proxy value as the proxy variables are read.

        A missing scheme means ``http://``, a missing port the scheme's default.

        >>> ProxyURL.parse("my-proxy:3128")
        ProxyURL(scheme='http', host='my-proxy', port=3128)
        >>> str(ProxyURL.parse("HTTPS://[::1]"))
        'https://[::1]:443'

        Args:
            text: the value, e.g. ``"http://my-proxy:3128"``.
            variable: what to name in an error, e.g. ``"HTTPS_PROXY"``.

        Raises:
            ConfigError: credentials (``CP106``), another scheme, a path, or a host or port
                that cannot be valid (``CP107``). The message never contains the password.
        """
        return parse_proxy(text, variable=variable).url

    @property
    def authority(self) -> str:
        """``host:port``, with IPv6 hosts in brackets."""
        return format_authority(self.host, self.port)

    @property
    def is_tls(self) -> bool:
        """True for an ``https://`` proxy, to which the client speaks TLS itself."""
        return self.scheme == "https"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


class ParsedProxy(NamedTuple):
    """A proxy value with what had to be assumed to read it."""

    url: ProxyURL
    scheme_assumed: bool
    port_assumed: bool


def redact(value: str, *, keep_user: bool = True) -> str:
    """Return *value* with the password (or, if not *keep_user*, all user info) masked.

    Works on anything URL-like, including values too broken to parse, so it is safe to
    quote in an error message.
    """
    match = _SCHEME.match(value)
    head = match.group(0) if match else ""
    rest = value[len(head) :]
    if "@" not in rest:
        return value
    userinfo, _, hostpart = rest.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    if keep_user and not has_password:
        masked = user
    elif keep_user:
        masked = f"{user}:***"
    else:
        masked = "***"
    return f"{head}{masked}@{hostpart}"


# A token of free text that holds an '@': user information may follow a scheme and may hold
# '/', '?', '#' or ':' (a password), so the token runs to the next space, quote or separator.
_AT_TOKEN = re.compile(r"[^\s'\",()<>\[\]]*@[^\s'\",()<>]*")


def scrub(text: str, *, keep_user: bool = True) -> str:
    """Mask the user information of every URL-like token in free *text* (see :func:`redact`).

    For texts that quote values the parsers never saw (messages, findings, CLI output): a
    value already redacted stays as it is.
    """
    return _AT_TOKEN.sub(lambda match: redact(match.group(), keep_user=keep_user), text)


def redact_list(value: str) -> str:
    """A comma-separated list (NO_PROXY) with all user information masked in each entry."""
    return ",".join(redact(entry, keep_user=False) for entry in value.split(","))


def parse_proxy(value: str, *, variable: str) -> ParsedProxy:
    """Parse a proxy variable's value as CARTO documents it: ``http(s)://<hostname>:<port>``.

    A missing scheme means ``http://`` and a missing port the scheme's default; both are
    reported in the result so that diagnostics can warn about them.

    Raises:
        ConfigError: credentials (unsupported by CARTO), another scheme, a path, or a host or
            port that cannot be valid. The message never contains the password.
    """
    text = value.strip()
    try:
        return _parse(text)
    except _Invalid as invalid:
        shown = redact(text)
        raise ConfigError(
            variable, shown, invalid.problem, invalid.fix, code=invalid.code
        ) from None


class _Invalid(Exception):
    def __init__(self, problem: str, fix: str = _FORMAT_FIX, code: str = "CP107") -> None:
        self.problem = problem
        self.fix = fix
        self.code = code


def _parse(text: str) -> ParsedProxy:
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else "http"
    if scheme not in _DEFAULT_PORTS:
        raise _Invalid(f"the {scheme}:// scheme is not supported (only http and https)")
    rest = text[match.end() :] if match else text
    # Any '@' means user information, even after a '/', '?' or '#': a password may hold those
    # characters, and the error must say "credentials", not "a path".
    if "@" in rest:
        raise _Invalid(
            "proxy password authentication is not supported by CARTO Self-hosted",
            "remove the user information (user:password@); let the proxy allow this client "
            "by its address instead",
            code="CP106",
        )
    authority, _, path = rest.partition("/")
    if path.strip("/") or "?" in rest or "#" in rest:
        raise _Invalid("a proxy URL has no path, query or fragment")
    host, port = _split_authority(authority)
    url = ProxyURL(scheme=scheme, host=host, port=port or _DEFAULT_PORTS[scheme])
    return ParsedProxy(url, scheme_assumed=match is None, port_assumed=port is None)


def _split_authority(authority: str) -> tuple[str, int | None]:
    try:
        host_text, port, bracketed = split_authority(authority)
        if not bracketed and ":" in host_text:
            raise _Invalid("an IPv6 address must be written in brackets", "write http://[::1]:3128")
        host, _ = parse_host(host_text, bracketed=bracketed)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    return host, port
