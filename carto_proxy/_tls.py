"""TLS material from a configuration: the CA bundle and the two SSL contexts.

``NODE_EXTRA_CA_CERTS`` is appended to certifi's roots, for the proxy hop and for origins (a
TLS-inspecting proxy re-signs origins with the same CA). ``NODE_TLS_REJECT_UNAUTHORIZED=0`` turns
off verification of the *proxy's* certificate only: Node applies it process-wide, but CARTO
documents it as a proxy setting, so origins stay verified.
"""

from __future__ import annotations

import _thread  # the lock below; `threading` would cost 1 ms of every import
import os
import re
from typing import TYPE_CHECKING

from .exceptions import ConfigError

if TYPE_CHECKING:
    import ssl

# ssl, certifi, hashlib and tempfile are imported where used: together they would triple the
# cost of `import carto_proxy`, and a configuration without a CA never needs them.

__all__ = [
    "bundle_path",
    "bundle_pem",
    "load_ca_file",
    "proxy_ssl_context",
    "ssl_context",
    "validate_pem",
]

_PEM_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----"
)
_MAX_CA_BYTES = 16 * 1024 * 1024  # a CA bundle is kilobytes; refuse to slurp a device
_PEM_FIX = "point it at a PEM file holding the CA certificate(s) (-----BEGIN CERTIFICATE-----)"


def load_ca_file(path: str, *, variable: str = "NODE_EXTRA_CA_CERTS") -> str:
    """Read and validate a PEM CA file; return its certificates as normalised PEM.

    Raises:
        ConfigError: the file is missing, unreadable, too large or holds no valid certificate.
    """
    try:
        regular = os.path.isfile(path)  # also refuses FIFOs and devices, which could block
    except ValueError:  # a NUL byte in the path
        regular = False
    if not regular:
        raise ConfigError(variable, path, "is not an existing regular file", _PEM_FIX, code="CP305")
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CA_BYTES + 1)
    except (OSError, ValueError) as error:
        raise ConfigError(
            variable, path, f"cannot be read ({error.__class__.__name__})", _PEM_FIX, code="CP305"
        ) from None
    if len(data) > _MAX_CA_BYTES:
        raise ConfigError(variable, path, "is larger than 16 MiB", _PEM_FIX, code="CP305")
    return validate_pem(data.decode("latin-1"), variable=variable, shown=path)


def validate_pem(text: str, *, variable: str, shown: str | None) -> str:
    """Return the certificates in *text* as PEM, each ending with a newline.

    Raises:
        ConfigError: no certificate is found, or OpenSSL refuses one.
    """
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigError(variable, shown, "holds no PEM certificate", _PEM_FIX, code="CP305")
    pem = "".join(block.strip() + "\n" for block in blocks)
    import ssl

    try:
        ssl.create_default_context().load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError(
            variable,
            shown,
            f"holds a certificate OpenSSL refuses ({error})",
            _PEM_FIX,
            code="CP305",
        ) from None
    return pem


def bundle_pem(extra_pem: str | None) -> str:
    """certifi's roots followed by *extra_pem*, newline-separated."""
    import certifi

    with open(certifi.where(), encoding="ascii") as file:
        roots = file.read()
    if not extra_pem:
        return roots
    return roots.rstrip("\n") + "\n" + extra_pem


def bundle_path(extra_pem: str | None) -> str:
    """Path of a PEM file holding :func:`bundle_pem`, for clients that only take a path.

    Without an extra CA this is certifi's own file. Otherwise the bundle is written once per
    content and process, into a directory of this process's own (``mkdtemp``: mode 0700, a
    name nobody can guess or create first), removed when the process exits. A shared,
    predictable path would let another local user plant a CA there first.
    """
    import certifi

    if not extra_pem:
        return certifi.where()
    pem = bundle_pem(extra_pem)
    with _bundles_lock:
        path = _bundles.get(pem)
        if path is None:
            path = _bundles[pem] = _write_bundle(pem)
    return path


_bundles: dict[str, str] = {}  # bundle PEM -> its file, for this process
_bundles_lock = _thread.allocate_lock()


def _write_bundle(pem: str) -> str:
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="carto_proxy-ca-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = os.path.join(directory, "bundle.pem")
    with open(path, "w", encoding="ascii", errors="replace") as handle:
        handle.write(pem)
    return path


def ssl_context(extra_pem: str | None) -> ssl.SSLContext:
    """A verifying client context trusting certifi plus *extra_pem* (for origins)."""
    import ssl

    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if extra_pem:
        context.load_verify_locations(cadata=extra_pem)
    return context


def proxy_ssl_context(extra_pem: str | None, *, verify: bool) -> ssl.SSLContext:
    """The context for the TLS hop to an ``https://`` proxy."""
    import ssl

    context = ssl_context(extra_pem)
    if not verify:
        context.check_hostname = False  # must precede CERT_NONE
        context.verify_mode = ssl.CERT_NONE
    return context
