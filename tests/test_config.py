"""ProxyConfig: construction, to_env(), repr, TLS settings (DESIGN §3.6-3.7)."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest
import trustme

from carto_proxy import ConfigError, ProxyConfig
from carto_proxy._no_proxy import NoProxy

from .test_routing import CARTO_HTTP, CARTO_HTTPS


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "proxy-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_direct_has_no_proxy() -> None:
    config = ProxyConfig.direct()
    assert not config.has_proxy
    assert config.to_env() == {}
    assert repr(config) == "ProxyConfig()"


def test_to_env_writes_both_cases_normalised(ca_file: Path) -> None:
    config = ProxyConfig.from_env(
        environ={
            "HTTPS_PROXY": "my-proxy:3128",
            "http_proxy": "http://my-proxy",
            "no_proxy": " a.com ,b ",
            "no_grpc_proxy": "c.com",
            "NODE_EXTRA_CA_CERTS": str(ca_file),
        }
    )
    assert config.to_env() == {
        "HTTP_PROXY": "http://my-proxy:80",
        "http_proxy": "http://my-proxy:80",
        "HTTPS_PROXY": "http://my-proxy:3128",
        "https_proxy": "http://my-proxy:3128",
        "NO_PROXY": "a.com,b",
        "no_proxy": "a.com,b",
        "NO_GRPC_PROXY": "c.com",
        "no_grpc_proxy": "c.com",
        "NODE_EXTRA_CA_CERTS": str(ca_file),
        "NODE_TLS_REJECT_UNAUTHORIZED": "1",
    }


@pytest.mark.parametrize("environ", [CARTO_HTTP, CARTO_HTTPS, {}, {"no_proxy": "x"}])
def test_to_env_round_trips(environ: dict[str, str]) -> None:
    config = ProxyConfig.from_env(environ=environ)
    assert ProxyConfig.from_env(environ=config.to_env()) == config


def test_variants_with_replace() -> None:
    config = ProxyConfig.from_env(environ=CARTO_HTTP)
    variant = dataclasses.replace(config, no_proxy=NoProxy.parse(".snowflakecomputing.com"))
    assert variant.route("https://a.snowflakecomputing.com").rule.value == "no_proxy"
    assert config.route("https://a.snowflakecomputing.com").rule.value == "proxy"


def test_repr_is_short_and_secret_free(ca_file: Path) -> None:
    config = ProxyConfig.from_env(environ={**CARTO_HTTPS, "NODE_EXTRA_CA_CERTS": str(ca_file)})
    text = repr(config)
    assert text.startswith("ProxyConfig(http_proxy='https://my-proxy:3129'")
    assert "BEGIN CERTIFICATE" not in text
    assert "verify_proxy=False" in text


@pytest.mark.parametrize("value", ["2", "true", "no", "00"])
def test_reject_unauthorized_values(value: str) -> None:
    with pytest.raises(ConfigError, match="must be 0 or 1") as caught:
        ProxyConfig.from_env(environ={"NODE_TLS_REJECT_UNAUTHORIZED": value})
    assert caught.value.code == "CP306"


def test_extra_ca_errors_name_the_path(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82garbage")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    for path, problem in [
        (tmp_path / "missing.pem", "not an existing regular file"),
        (tmp_path, "not an existing regular file"),
        (not_pem, "holds no PEM certificate"),
        (broken, "OpenSSL refuses"),
    ]:
        with pytest.raises(ConfigError, match=problem) as caught:
            ProxyConfig.from_env(environ={"NODE_EXTRA_CA_CERTS": str(path)})
        assert caught.value.variable == "NODE_EXTRA_CA_CERTS"
        assert str(path) in str(caught.value)
        assert caught.value.code == "CP305"


def test_ssl_contexts(ca_file: Path) -> None:
    config = ProxyConfig.from_env(
        environ={
            "https_proxy": "https://p:3129",
            "NODE_EXTRA_CA_CERTS": str(ca_file),
            "NODE_TLS_REJECT_UNAUTHORIZED": "0",
        }
    )
    origin, proxy = config.ssl_context(), config.proxy_ssl_context()
    assert origin.verify_mode is ssl.CERT_REQUIRED
    assert origin.check_hostname
    assert proxy.verify_mode is ssl.CERT_NONE
    assert not proxy.check_hostname
    extra = ca_file.read_text()
    assert extra.strip() in config.ca_bundle_pem()
    assert Path(config.ca_bundle_path()).read_text() == config.ca_bundle_pem()
    # The added CA is trusted by the origin context.
    assert (
        len(origin.get_ca_certs())
        == len(ssl.create_default_context(cafile=__import__("certifi").where()).get_ca_certs()) + 1
    )
    verified = ProxyConfig.from_env(environ={"NODE_EXTRA_CA_CERTS": str(ca_file)})
    assert verified.proxy_ssl_context().verify_mode is ssl.CERT_REQUIRED


def test_ca_bundle_file_is_private_to_the_process(ca_file: Path, tmp_path: Path) -> None:
    import hashlib
    import stat
    import tempfile

    config = ProxyConfig.from_env(environ={"NODE_EXTRA_CA_CERTS": str(ca_file)})
    pem = config.ca_bundle_pem()
    # Another local user plants a CA at the shared, predictable path older versions used.
    digest = hashlib.sha256(pem.encode("ascii", "replace")).hexdigest()[:16]
    planted = Path(tempfile.gettempdir(), f"carto_proxy-ca-{digest}.pem")
    planted.write_text("-----BEGIN CERTIFICATE-----\nplanted\n-----END CERTIFICATE-----\n")
    try:
        path = Path(config.ca_bundle_path())
        assert path != planted
        assert path.read_text() == pem
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert config.ca_bundle_path() == str(path)  # written once per content
        other = ProxyConfig.from_env(environ={"NODE_EXTRA_CA_CERTS": str(ca_file)})
        assert other.ca_bundle_path() == str(path)
    finally:
        planted.unlink()
