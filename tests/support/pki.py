"""Test PKI: three independent trustme CAs as PEM files, and Squid's certificate.

Files are written to a directory because the code under test takes CA *paths*
(``NODE_EXTRA_CA_CERTS``) and Squid takes certificate paths. The origins (``origins``,
``grpc_server``) are signed by ``origin_ca`` or ``untrusted_ca`` themselves.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.names import PROXY_CERT_NAMES


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCert:
    """A server certificate: the trustme leaf and where its PEM files are."""

    leaf: trustme.LeafCert
    cert_path: Path
    """Leaf certificate followed by its chain (what ``tls-cert=`` / ``load_cert_chain`` take)."""
    key_path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class PKI:
    """Three unrelated CAs: one for the proxy, one for origins, one nobody trusts.

    Build it with :meth:`create`.
    """

    directory: Path
    proxy_ca: trustme.CA
    """Signs Squid's TLS listener certificate."""
    origin_ca: trustme.CA
    """Signs the trusted origins' certificates (HTTPS and gRPC)."""
    untrusted_ca: trustme.CA
    """Signs the untrusted HTTPS origin's certificates; never written into a bundle."""
    proxy_ca_path: Path
    origin_ca_path: Path
    untrusted_ca_path: Path
    bundle_path: Path
    """proxy_ca + origin_ca in one file, as a TLS-inspecting proxy's NODE_EXTRA_CA_CERTS."""
    proxy_cert: ServerCert
    """For ``localhost``, ``127.0.0.1``, ``::1``."""

    @classmethod
    def create(cls, directory: Path) -> PKI:
        """Generate the CAs and certificates and write their PEM files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        proxy_ca, origin_ca, untrusted_ca = trustme.CA(), trustme.CA(), trustme.CA()
        paths = {name: directory / f"{name}-ca.pem" for name in ("proxy", "origin", "untrusted")}
        proxy_ca.cert_pem.write_to_path(str(paths["proxy"]))
        origin_ca.cert_pem.write_to_path(str(paths["origin"]))
        untrusted_ca.cert_pem.write_to_path(str(paths["untrusted"]))
        bundle = directory / "ca-bundle.pem"
        proxy_ca.cert_pem.write_to_path(str(bundle))
        origin_ca.cert_pem.write_to_path(str(bundle), append=True)
        return cls(
            directory=directory,
            proxy_ca=proxy_ca,
            origin_ca=origin_ca,
            untrusted_ca=untrusted_ca,
            proxy_ca_path=paths["proxy"],
            origin_ca_path=paths["origin"],
            untrusted_ca_path=paths["untrusted"],
            bundle_path=bundle,
            proxy_cert=_issue(proxy_ca, PROXY_CERT_NAMES, directory / "proxy"),
        )

    def client_context(self, *cafiles: Path) -> ssl.SSLContext:
        """Return a verifying client context trusting only ``cafiles`` (default: proxy CA)."""
        # PROTOCOL_TLS_CLIENT verifies the chain and the host name by default.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        for cafile in cafiles or (self.proxy_ca_path,):
            context.load_verify_locations(cafile=str(cafile))
        return context


def _issue(ca: trustme.CA, names: Iterable[str], stem: Path) -> ServerCert:
    leaf = ca.issue_cert(*names)
    cert_path = stem.with_suffix(".pem")
    key_path = stem.with_suffix(".key")
    for index, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert_path), append=index > 0)
    leaf.private_key_pem.write_to_path(str(key_path))
    return ServerCert(leaf=leaf, cert_path=cert_path, key_path=key_path)
