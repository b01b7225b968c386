"""A configuration whose CA file lives on another machine (``ca="defer"``, issue 13 §1)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from carto_proxy import Action, ConfigError, ProxyConfig, Rule, Severity, check

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HTTPS_ENV = EXAMPLES / "https-proxy.env"
MISSING = "/opt/carto/certs/proxy-ca.crt"  # what CARTO's example names; not on this machine


@pytest.fixture
def deferred() -> ProxyConfig:
    assert not Path(MISSING).exists()
    return ProxyConfig.from_env_file(HTTPS_ENV, ca="defer")


def test_loading_carto_s_https_example_fails_without_defer() -> None:
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env_file(HTTPS_ENV)
    assert (caught.value.code, caught.value.value) == ("CP305", MISSING)


def test_a_deferred_config_routes_and_writes_its_env(deferred: ProxyConfig) -> None:
    assert deferred.extra_ca_file == MISSING
    assert deferred.route("https://auth.carto.com").action is Action.PROXY
    assert deferred.route("https://xy1.snowflakecomputing.com").rule is (
        Rule.WAREHOUSE_HTTPS_UNSUPPORTED
    )
    env = deferred.to_env()
    assert env["NODE_EXTRA_CA_CERTS"] == MISSING
    assert env["NODE_TLS_REJECT_UNAUTHORIZED"] == "0"
    assert f"extra_ca_file={MISSING!r}" in repr(deferred)


@pytest.mark.parametrize(
    "method",
    ["ssl_context", "proxy_ssl_context", "ca_bundle_pem", "ca_bundle_path", "extra_ca_certs"],
)
def test_the_tls_methods_raise_cp305_when_they_need_the_file(
    deferred: ProxyConfig, method: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        getattr(deferred, method)()
    assert (caught.value.code, caught.value.variable, caught.value.value) == (
        "CP305",
        "NODE_EXTRA_CA_CERTS",
        MISSING,
    )


def test_a_file_that_appears_later_is_read_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    config = ProxyConfig.from_env(
        environ={"https_proxy": "https://p:3129", "NODE_EXTRA_CA_CERTS": str(path)}, ca="defer"
    )
    with pytest.raises(ConfigError):
        config.ssl_context()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(path))
    context = config.ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    roots = len(ProxyConfig.direct().ssl_context().get_ca_certs())
    assert len(context.get_ca_certs()) == roots + 1  # certifi's roots and this CA
    assert (config.extra_ca_certs() or "").strip() == ca.cert_pem.bytes().decode().strip()


def test_check_reports_the_missing_file_unless_it_is_checked_elsewhere(
    deferred: ProxyConfig,
) -> None:
    loaded = check(deferred)
    elsewhere = check(deferred, ca="defer")
    from_file = check(env_file=HTTPS_ENV, ca="defer")
    assert [d.code for d in loaded if d.severity is Severity.ERROR] == ["CP305"]
    assert "CP307" not in {d.code for d in loaded}
    for found in (elsewhere, from_file):
        assert [d.code for d in found if d.code.startswith("CP30")] == ["CP301", "CP304", "CP307"]
        assert not [d for d in found if d.severity is Severity.ERROR]
    (info,) = [d for d in elsewhere if d.code == "CP307"]
    assert info.severity is Severity.INFO
    assert MISSING in info.message
    # the other findings are the same either way
    others = {d.code for d in loaded} - {"CP305"}
    assert others == {d.code for d in elsewhere} - {"CP307", "CP304"}


def test_defer_is_accepted_by_every_constructor(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("externalProxy:\n  enabled: true\n  connectionString: http://p:3128\n")
    assert ProxyConfig.from_helm_values(values, ca="defer").has_proxy
    assert ProxyConfig.from_env(environ={}, ca="load") == ProxyConfig.direct()
    with pytest.raises(ValueError, match="'load' or 'defer'"):
        ProxyConfig.from_env(environ={}, ca="later")  # type: ignore[arg-type]


def adapters() -> list[tuple[str, Callable[[ProxyConfig], Any]]]:
    def httpx_client(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import httpx

        return httpx.client(config)

    def httpx_async(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import httpx

        return httpx.async_client(config)

    def urllib3_pool(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import urllib3

        return urllib3.pool_manager(config)

    def requests_get(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import requests

        # Refused before any connection: port 9 (discard) on loopback is never reached.
        return requests.session(config).get("https://127.0.0.1:9/", timeout=2)

    def grpc_credentials(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import grpc

        return grpc.ssl_credentials(config)

    def snowflake_kwargs(config: ProxyConfig) -> Any:
        from carto_proxy.adapters import snowflake

        return snowflake.connect_kwargs(config, account="xy12345")

    return [
        (f.__name__, f)
        for f in (
            httpx_client,
            httpx_async,
            urllib3_pool,
            requests_get,
            grpc_credentials,
            snowflake_kwargs,
        )
    ]


@pytest.mark.parametrize(("name", "build"), adapters(), ids=[n for n, _ in adapters()])
def test_every_adapter_raises_cp305_for_a_missing_deferred_ca(
    deferred: ProxyConfig, name: str, build: Callable[[ProxyConfig], Any]
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(deferred)
    assert caught.value.code == "CP305", name
    assert MISSING in str(caught.value)


def test_an_httpx_client_from_a_deferred_config_works_once_the_file_is_there(
    tmp_path: Path,
) -> None:
    from carto_proxy.adapters import httpx as proxied

    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    config = ProxyConfig.from_env(
        environ={"https_proxy": "http://p:3128", "NODE_EXTRA_CA_CERTS": str(path)}, ca="defer"
    )
    with proxied.client(config) as client:
        assert client is not None
