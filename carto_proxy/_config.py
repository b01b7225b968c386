"""ProxyConfig: the parsed, validated proxy configuration, and its routing entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    import ssl

from . import _env, _helm, _tls
from ._no_proxy import NoProxy
from ._proxy_url import ProxyURL, parse_proxy, redact
from ._routing import Route, Router
from ._target import Protocol, parse_target, target_text
from ._warehouses import Warehouse
from .exceptions import ConfigError, TargetError

__all__ = ["CALoading", "ProxyConfig", "build"]

_T = TypeVar("_T")
_ROUTE_CACHE_SIZE = 4096
_PROXY_FIELDS = ("http_proxy", "https_proxy", "grpc_proxy")

CALoading = Literal["load", "defer"]
"""When ``NODE_EXTRA_CA_CERTS`` is read: when the configuration is built, or when needed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """A complete proxy configuration, parsed and validated up front.

    Build it with a named constructor (:meth:`from_env`, :meth:`from_env_file`,
    :meth:`from_helm_values`, :meth:`direct`); derive variants with
    :func:`dataclasses.replace`. Once built it never raises for configuration reasons, and
    :meth:`route` is pure, thread-safe and cached.

    >>> config = ProxyConfig.from_env(environ={
    ...     "https_proxy": "http://my-proxy:3128", "no_proxy": ".internal"})
    >>> config.route("https://auth.carto.com").action
    <Action.PROXY: 'proxy'>
    >>> config.route("https://db.internal").rule
    <Rule.NO_PROXY: 'no_proxy'>
    """

    http_proxy: ProxyURL | None = None
    https_proxy: ProxyURL | None = None
    grpc_proxy: ProxyURL | None = None
    no_proxy: NoProxy = field(default_factory=lambda: NoProxy.parse(None))
    no_grpc_proxy: NoProxy | None = None
    extra_ca_file: str | None = None
    extra_ca_pem: str | None = field(default=None, repr=False)
    verify_proxy: bool = True
    # Set by the named constructors only: a config built or replaced by hand describes no
    # source (dataclasses.replace() does not copy init=False fields).
    sources: _env.Sources | None = field(default=None, init=False, compare=False, repr=False)
    _routes: dict[object, Route] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    _router: Router = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Text is accepted where a parsed value is expected (ProxyConfig(https_proxy="..."),
        # dataclasses.replace(config, no_proxy="...")), parsed and validated like a variable.
        for name in _PROXY_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, parse_proxy(value, variable=name).url)
        for name in ("no_proxy", "no_grpc_proxy"):
            value = getattr(self, name)
            if isinstance(value, str) or (name == "no_proxy" and value is None):
                object.__setattr__(self, name, NoProxy.parse(value))
        router = Router(
            http_proxy=self.http_proxy,
            https_proxy=self.https_proxy,
            grpc_proxy=self.grpc_proxy,
            no_proxy=self.no_proxy,
            no_grpc_proxy=self.no_grpc_proxy,
        )
        object.__setattr__(self, "_router", router)  # frozen: set once, here

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, ca: CALoading = "load"
    ) -> ProxyConfig:
        """Read the configuration from *environ* (``os.environ`` when ``None``).

        Args:
            environ: the variables; ``None`` reads ``os.environ``.
            ca: ``"load"`` reads and validates the ``NODE_EXTRA_CA_CERTS`` file now;
                ``"defer"`` keeps only its path, for a configuration whose CA file lives on
                another machine: routing, :meth:`to_env` and ``check()`` work, and the TLS
                methods (hence every adapter) read the file when they need it, raising the
                ``CP305`` :class:`~carto_proxy.ConfigError` if it is not there.

        Raises:
            ConfigError: a variable holds a value carto_proxy refuses.
        """
        return _logged(build(_env.read_environ(environ), ca=ca))

    @classmethod
    def from_env_file(cls, path: str | os.PathLike[str], *, ca: CALoading = "load") -> ProxyConfig:
        """Read a CARTO Self-hosted ``.env`` file (docker-compose syntax).

        *ca* is as for :meth:`from_env`: ``ca="defer"`` reads CARTO's ``https-proxy.env``
        on a machine without its ``/opt/carto/certs/proxy-ca.crt``.
        """
        return _logged(build(_env.read_env_file(path), ca=ca))

    @classmethod
    def from_helm_values(
        cls, path: str | os.PathLike[str], *, ca: CALoading = "load"
    ) -> ProxyConfig:
        """Read CARTO Helm values (``externalProxy.*``); needs the ``helm`` extra.

        Helm values carry their CAs inline, so *ca* (as for :meth:`from_env`) changes
        nothing; it is accepted so that every constructor takes the same arguments.
        """
        return _logged(build(_helm.read_helm_values(path), ca=ca))

    @classmethod
    def direct(cls) -> ProxyConfig:
        """A configuration with no proxy at all: every target goes direct."""
        return cls()

    @property
    def has_proxy(self) -> bool:
        """True when any of HTTP_PROXY, HTTPS_PROXY or GRPC_PROXY is set."""
        return bool(self.http_proxy or self.https_proxy or self.grpc_proxy)

    def proxy_for(self, protocol: Protocol) -> tuple[ProxyURL | None, str | None]:
        """Return the proxy a protocol uses and the variable it comes from.

        ``http`` uses HTTP_PROXY and ``https`` HTTPS_PROXY, with no fallback between them;
        gRPC uses GRPC_PROXY, else HTTPS_PROXY, else HTTP_PROXY; TCP never uses a proxy.
        """
        return self._router.proxy_for(protocol)

    def route(
        self,
        target: str,
        *,
        protocol: Protocol | str | None = None,
        warehouse: Warehouse | str | None = None,
    ) -> Route:
        """Decide how to reach *target*: through a proxy or directly, and why.

        Args:
            target: a URL, ``host[:port]``, gRPC target or warehouse DSN, as text or as a
                URL object (``httpx.URL``, ``yarl.URL``, ``urllib.parse`` results).
            protocol: overrides the protocol the target's scheme implies.
            warehouse: the warehouse the target belongs to, when the host does not say.

        Raises:
            TargetError: the target, protocol or warehouse cannot be parsed.
        """
        if type(target) is not str:  # a URL object is cached by its text; anything else refused
            target = target_text(target)
        # The common call, a target alone, is keyed by the target itself: no tuple to build.
        key = target if protocol is None and warehouse is None else (target, protocol, warehouse)
        routes = self._routes
        try:
            cached = routes.get(key)
        except TypeError:  # an unhashable argument: decide, without the cache
            return self._route_uncached(target, protocol, warehouse)
        if cached is not None:
            return cached
        if key is target:  # the common call, without another frame
            route = self._router.decide(parse_target(target), None)
        else:
            route = self._route_uncached(target, protocol, warehouse)
        if len(routes) >= _ROUTE_CACHE_SIZE:
            routes.clear()  # bounded; a cleared cache only costs a re-decision
        routes[key] = route
        return route

    def _route_uncached(self, target: str, protocol: object, warehouse: object) -> Route:
        if protocol is not None:
            protocol = _coerce(Protocol, protocol, "protocol", target)
        if warehouse is not None:
            warehouse = _coerce(Warehouse, warehouse, "warehouse", target)
        return self._router.decide(parse_target(target, protocol, warehouse), warehouse)

    def to_env(self, *, ca_path: str | None = None) -> dict[str, str]:
        """Return the variables CARTO's ``.env`` needs for this configuration.

        In the order CARTO's page writes them: both cases for the proxy variables, normalised
        values (scheme and port written out), ``NO_GRPC_PROXY`` when set, ``NODE_EXTRA_CA_CERTS``
        when the CA came from a file or *ca_path* says where the PEM will be mounted, and
        ``NODE_TLS_REJECT_UNAUTHORIZED`` whenever a proxy is set (``1`` is Node's default, but
        the block then says outright whether the proxy's certificate is verified). Unset
        variables are left out. ``carto-proxy env`` writes exactly these.
        """
        env: dict[str, str] = {}
        pairs = (
            ("HTTP_PROXY", self.http_proxy),
            ("HTTPS_PROXY", self.https_proxy),
            ("GRPC_PROXY", self.grpc_proxy),
            ("NO_PROXY", self.no_proxy or None),
            ("NO_GRPC_PROXY", self.no_grpc_proxy),
        )
        for name, value in pairs:
            if value is not None:
                env[name] = env[name.lower()] = str(value)
        ca = ca_path or self.extra_ca_file
        if ca:
            env[_env.EXTRA_CA] = ca
        if self.has_proxy:
            env[_env.REJECT_UNAUTHORIZED] = "1" if self.verify_proxy else "0"
        return env

    def extra_ca_certs(self) -> str | None:
        """The extra CA certificates as PEM (``NODE_EXTRA_CA_CERTS``, inline Helm CAs).

        ``None`` when there are none. A file whose reading was deferred (``ca="defer"``) is
        read now, every time: it may appear after the configuration was built.

        Raises:
            ConfigError: a deferred file is missing or unusable (``CP305``).
        """
        if self.extra_ca_pem is None and self.extra_ca_file is not None:
            return _tls.load_ca_file(self.extra_ca_file)
        return self.extra_ca_pem

    def ssl_context(self) -> ssl.SSLContext:
        """A new verifying context for origins: certifi plus ``NODE_EXTRA_CA_CERTS``.

        Raises:
            ConfigError: the CA file was deferred and cannot be used (``CP305``).
        """
        return _tls.ssl_context(self.extra_ca_certs())

    def proxy_ssl_context(self) -> ssl.SSLContext:
        """A new context for the TLS hop to an ``https://`` proxy.

        Verification is off only when ``NODE_TLS_REJECT_UNAUTHORIZED=0``.

        Raises:
            ConfigError: the CA file was deferred and cannot be used (``CP305``).
        """
        return _tls.proxy_ssl_context(self.extra_ca_certs(), verify=self.verify_proxy)

    def ca_bundle_pem(self) -> str:
        """certifi's roots plus the extra CA, as one PEM string.

        Raises:
            ConfigError: the CA file was deferred and cannot be used (``CP305``).
        """
        return _tls.bundle_pem(self.extra_ca_certs())

    def ca_bundle_path(self) -> str:
        """A PEM file with :meth:`ca_bundle_pem`, for clients that only take a path.

        Raises:
            ConfigError: the CA file was deferred and cannot be used (``CP305``).
        """
        return _tls.bundle_path(self.extra_ca_certs())

    def __repr__(self) -> str:
        shown = [
            f"{name}={str(value)!r}"
            for name, value in (
                ("http_proxy", self.http_proxy),
                ("https_proxy", self.https_proxy),
                ("grpc_proxy", self.grpc_proxy),
                ("no_proxy", self.no_proxy or None),
                ("no_grpc_proxy", self.no_grpc_proxy),
                ("extra_ca_file", self.extra_ca_file),
            )
            if value is not None
        ]
        if self.extra_ca_pem and not self.extra_ca_file:
            shown.append("extra_ca_pem=<inline PEM>")
        if not self.verify_proxy:
            shown.append("verify_proxy=False")
        return f"ProxyConfig({', '.join(shown)})"


_E = TypeVar("_E", Protocol, Warehouse)


def _coerce(kind: type[_E], value: object, name: str, target: str) -> _E | None:
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        shown = redact(str(value), keep_user=False)[:40]
        raise TargetError(
            redact(target, keep_user=False), f"{name} {shown!r} is not one of {choices}"
        ) from None


def _logged(config: ProxyConfig) -> ProxyConfig:
    """*config*, once the ``carto_proxy.config`` logger has said how it was read.

    A process that never imported logging has configured no handler that could show the
    records, so the logging module and ours (3 ms with threading) are only imported by one
    that has.
    """
    if "logging" in sys.modules:
        from ._config_log import log_config

        log_config(config)
    return config


def build(
    sources: _env.Sources, errors: list[ConfigError] | None = None, *, ca: CALoading = "load"
) -> ProxyConfig:
    """Parse and validate *sources* into a :class:`ProxyConfig`.

    With *errors* given, each refused value is appended to it and treated as unset, so that
    ``check()`` can report every problem at once; otherwise the first one is raised. With
    ``ca="defer"`` the ``NODE_EXTRA_CA_CERTS`` file is not read: the configuration keeps its
    path and :meth:`ProxyConfig.extra_ca_certs` reads it when it is needed.
    """
    if ca not in ("load", "defer"):
        raise ConfigError(
            "ca",
            redact(str(ca), keep_user=False)[:40],
            "must be 'load' or 'defer'",
            "pass ca='load' to read NODE_EXTRA_CA_CERTS now, or ca='defer' when the file is on "
            "another machine",
        )

    def attempt(parse: Callable[[], _T], default: _T) -> _T:
        try:
            return parse()
        except ConfigError as error:
            if errors is None:
                raise
            errors.append(error)
            return default

    def proxy(name: str) -> ProxyURL | None:
        setting = sources.get(name)
        if setting.value is None:
            return None
        value, variable = setting.value, setting.source or name
        return attempt(lambda: parse_proxy(value, variable=variable).url, None)

    grpc_exclusions = sources.get("NO_GRPC_PROXY").value
    pem, ca_file = None, sources.extra_ca_certs
    if ca_file is not None and ca == "load":
        path = ca_file
        pem = attempt(lambda: _tls.load_ca_file(path), None)
        ca_file = ca_file if pem is not None else None
    # A file and an inline CA never come together: .env files have no inline CA, Helm values
    # no NODE_EXTRA_CA_CERTS (extra_ca_certs() would not read a deferred file beside a PEM).
    if sources.inline_ca:
        inline = attempt(
            lambda: _tls.validate_pem(
                sources.inline_ca or "", variable="trustedCACerts.value", shown="<inline PEM>"
            ),
            None,
        )
        pem = "".join(p for p in (pem, inline) if p) or None
    config = ProxyConfig(
        http_proxy=proxy("HTTP_PROXY"),
        https_proxy=proxy("HTTPS_PROXY"),
        grpc_proxy=proxy("GRPC_PROXY"),
        no_proxy=NoProxy.parse(sources.get("NO_PROXY").value),
        no_grpc_proxy=None if grpc_exclusions is None else NoProxy.parse(grpc_exclusions),
        extra_ca_file=ca_file,
        extra_ca_pem=pem,
        verify_proxy=attempt(lambda: _verify_flag(sources.reject_unauthorized), True),
    )
    object.__setattr__(config, "sources", sources)  # frozen, and not an __init__ argument
    return config


def _verify_flag(value: str | None) -> bool:
    if value is None or value == "1":
        return True
    if value == "0":
        return False
    raise ConfigError(
        "NODE_TLS_REJECT_UNAUTHORIZED",
        value,
        "must be 0 or 1",
        "set 1 to verify the proxy's certificate (the default) or 0 to skip it",
        code="CP306",
    )
