"""proxy_environ: set exactly the variables CARTO's ``.env`` would, then put everything back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from carto_proxy._config import ProxyConfig
from carto_proxy._env import CASE_PAIRS, EXTRA_CA, REJECT_UNAUTHORIZED
from carto_proxy._tls import load_ca_file
from carto_proxy.testing._ca_files import ca_bundle

if TYPE_CHECKING:
    from carto_proxy.testing._recording_proxy import RecordingProxy

__all__ = ["MANAGED_VARIABLES", "environ_config", "environ_listeners", "proxy_environ"]

CaFiles = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

MANAGED_VARIABLES: tuple[str, ...] = (
    *(name for base in (*CASE_PAIRS, "ALL_PROXY") for name in (base, base.lower())),
    EXTRA_CA,
    REJECT_UNAUTHORIZED,
)
"""Every variable :func:`proxy_environ` sets or clears, and restores afterwards.

The five CARTO pairs and ``ALL_PROXY`` (which curl, requests and httpx read) in both cases,
and the two Node variables, which Node reads in uppercase only.
"""

environ_listeners: list[Callable[[], None]] = []
"""Called each time :func:`proxy_environ` has changed ``os.environ`` (``block_direct`` follows)."""


@contextmanager
def proxy_environ(
    proxy: str | ProxyConfig | RecordingProxy | None = None,
    *,
    no_proxy: str | Iterable[str] | None = None,
    no_grpc_proxy: str | Iterable[str] | None = None,
    ca_file: CaFiles | None = None,
    verify_proxy: bool | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> Iterator[ProxyConfig]:
    """Set the proxy environment of a CARTO deployment for the duration of a ``with`` block.

    The variables written are exactly those :meth:`ProxyConfig.to_env` returns (both cases,
    normalised values); every other variable in :data:`MANAGED_VARIABLES` is removed, so
    nothing left over from the machine or an earlier test (``ALL_PROXY``, an uppercase-only
    ``NO_PROXY``…) leaks in. On exit each of them is put back as it was, unset ones included,
    whatever the block did to them.

    A proxy URL (or a :class:`~carto_proxy.testing.RecordingProxy`) is written the way CARTO
    documents it: ``HTTP_PROXY`` and ``HTTPS_PROXY``, plus ``GRPC_PROXY`` for an ``http://``
    proxy (gRPC cannot use an ``https://`` one). ``None`` clears everything.

    ``NODE_EXTRA_CA_CERTS`` names every CA in use at once: a TLS ``RecordingProxy``'s, the
    CA of a configuration given (a file or inline Helm PEM), and each ``ca_file`` (a
    :class:`~carto_proxy.testing.LocalOrigin`'s, your own). One of them is named as it is;
    several are bundled into a temporary file, removed on exit.

    >>> import os
    >>> with proxy_environ("my-proxy:3128", no_proxy=[".internal", "localhost"]) as config:
    ...     os.environ["https_proxy"], os.environ["NO_PROXY"]
    ...     config.route("https://db.internal").action.value
    ('http://my-proxy:3128', '.internal,localhost')
    'direct'
    >>> "https_proxy" in os.environ
    False

    Args:
        proxy: a proxy URL, a :class:`ProxyConfig` (written through ``to_env()``), a
            ``RecordingProxy`` (started, or stopped to simulate a proxy that is down), or
            ``None`` for no proxy.
        no_proxy: ``NO_PROXY``, as one comma-separated string or as entries; replaces the
            configuration's.
        no_grpc_proxy: ``NO_GRPC_PROXY``, likewise.
        ca_file: a PEM file (a path), or several, to trust as well as the proxy's CA.
        verify_proxy: ``False`` writes ``NODE_TLS_REJECT_UNAUTHORIZED=0``.
        environ: the mapping to change instead of ``os.environ``.

    Yields:
        The configuration the block's code reads: ``ProxyConfig.from_env()`` of what was set.

    Raises:
        ConfigError: a value carto_proxy refuses (a ``ca_file`` that is missing or holds no
            certificate); the environment is left untouched.
    """
    env = os.environ if environ is None else environ
    with _ca_file_for(proxy, ca_file) as ca:
        config = environ_config(
            proxy,
            no_proxy=no_proxy,
            no_grpc_proxy=no_grpc_proxy,
            ca_file=ca,
            verify_proxy=verify_proxy,
        )
        written = config.to_env()
        saved = {name: env.get(name) for name in MANAGED_VARIABLES}
        try:
            for name in MANAGED_VARIABLES:
                env.pop(name, None)
            env.update(written)
            _changed(env)
            yield config
        finally:
            for name, value in saved.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
            _changed(env)


def _changed(env: MutableMapping[str, str]) -> None:
    if env is os.environ:
        for listener in list(environ_listeners):
            listener()


def environ_config(
    proxy: str | ProxyConfig | RecordingProxy | None,
    *,
    no_proxy: str | Iterable[str] | None = None,
    no_grpc_proxy: str | Iterable[str] | None = None,
    ca_file: str | None = None,
    verify_proxy: bool | None = None,
) -> ProxyConfig:
    """Return the configuration :func:`proxy_environ` writes, without touching any environment.

    Arguments as for :func:`proxy_environ`, except that a CA given inline is not written out.

    Raises:
        ConfigError: a value carto_proxy refuses.
    """
    if isinstance(proxy, ProxyConfig):
        source = proxy.to_env(ca_path=ca_file)
    else:
        source = {}
        url = None if proxy is None else proxy if isinstance(proxy, str) else proxy.url
        if url is not None:
            source["HTTP_PROXY"] = source["HTTPS_PROXY"] = url
            # CARTO documents GRPC_PROXY for an http:// proxy only: gRPC cannot speak TLS to
            # a proxy, and ProxyConfig.from_env parses an absent scheme as http://.
            if not url.strip().lower().startswith("https://"):
                source["GRPC_PROXY"] = url
    source = {name.upper(): value for name, value in source.items()}
    for name, value in (("NO_PROXY", no_proxy), ("NO_GRPC_PROXY", no_grpc_proxy)):
        if value is not None:
            source[name] = value if isinstance(value, str) else ",".join(value)
    if ca_file is not None:
        source[EXTRA_CA] = ca_file
    if verify_proxy is not None:
        source[REJECT_UNAUTHORIZED] = "1" if verify_proxy else "0"
    return ProxyConfig.from_env(environ=source)


@contextmanager
def _ca_file_for(
    proxy: str | ProxyConfig | RecordingProxy | None, ca_file: CaFiles | None
) -> Iterator[str | None]:
    """Yield the one file ``NODE_EXTRA_CA_CERTS`` names: every CA in use, bundled if several."""
    found = _cas_of(proxy)
    given = [ca_file] if isinstance(ca_file, (str, os.PathLike)) else list(ca_file or ())
    for path in (os.fspath(each) for each in given):
        if all(path != known for _, known in found):
            found.append((None, path))
    if not found:
        yield None
    elif len(found) == 1 and found[0][1] is not None:
        yield found[0][1]
    else:
        pems = [pem if pem is not None else load_ca_file(str(path)) for pem, path in found]
        with ca_bundle(*pems) as bundle:
            yield bundle


def _cas_of(
    proxy: str | ProxyConfig | RecordingProxy | None,
) -> list[tuple[str | None, str | None]]:
    """The CA of *proxy* as ``(pem, path)``: either may be unknown, not both."""
    if isinstance(proxy, ProxyConfig):
        if proxy.extra_ca_pem is None:
            return [(None, proxy.extra_ca_file)] if proxy.extra_ca_file else []
        return [(proxy.extra_ca_pem, proxy.extra_ca_file)]
    if proxy is None or isinstance(proxy, str) or not proxy.tls:
        return []
    try:
        return [(proxy.ca_pem, proxy.ca_file)]
    except RuntimeError:  # a stopped proxy stands for a proxy that is down: no CA to trust
        return []
