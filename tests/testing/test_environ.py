"""proxy_environ writes exactly what to_env() would, clears the rest, and restores exactly."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest
import trustme

from carto_proxy import Action, ConfigError, ProxyConfig, Rule
from carto_proxy.testing import RecordingProxy, proxy_environ
from carto_proxy.testing import _environ as environ_module
from carto_proxy.testing._environ import MANAGED_VARIABLES

CARTO_HTTP = {
    "HTTP_PROXY": "http://my-proxy:3128",
    "http_proxy": "http://my-proxy:3128",
    "HTTPS_PROXY": "http://my-proxy:3128",
    "https_proxy": "http://my-proxy:3128",
    "GRPC_PROXY": "http://my-proxy:3128",
    "grpc_proxy": "http://my-proxy:3128",
    "NODE_TLS_REJECT_UNAUTHORIZED": "1",
}


def managed(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name in MANAGED_VARIABLES}


def test_managed_variables_cover_both_cases_all_proxy_and_node() -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "NO_PROXY", "NO_GRPC_PROXY"):
        assert {name, name.lower()} <= set(MANAGED_VARIABLES)
    assert {"ALL_PROXY", "all_proxy", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED"} <= (
        set(MANAGED_VARIABLES)
    )
    assert "node_extra_ca_certs" not in MANAGED_VARIABLES  # Node reads uppercase only


def test_url_is_written_as_carto_documents_an_http_proxy() -> None:
    env: dict[str, str] = {}
    with proxy_environ("my-proxy:3128", environ=env) as config:
        assert env == CARTO_HTTP  # scheme added, both cases, GRPC_PROXY, nothing else
        assert env == config.to_env()
        assert ProxyConfig.from_env(environ=env) == config
    assert env == {}


def test_https_proxy_sets_no_grpc_proxy_as_carto_documents() -> None:
    env: dict[str, str] = {}
    with proxy_environ("https://my-proxy:3129", no_proxy=["mega.io", "dropbox.com"], environ=env):
        assert env == {
            "HTTP_PROXY": "https://my-proxy:3129",
            "http_proxy": "https://my-proxy:3129",
            "HTTPS_PROXY": "https://my-proxy:3129",
            "https_proxy": "https://my-proxy:3129",
            "NO_PROXY": "mega.io,dropbox.com",
            "no_proxy": "mega.io,dropbox.com",
            "NODE_TLS_REJECT_UNAUTHORIZED": "1",
        }


def test_clears_every_other_proxy_variable_and_restores_exactly() -> None:
    before = {
        "ALL_PROXY": "socks5://elsewhere:1080",
        "all_proxy": "socks5://elsewhere:1080",
        "NO_GRPC_PROXY": "stale.example",
        "no_proxy": "stale-lowercase-only",
        "NODE_EXTRA_CA_CERTS": "/nowhere/ca.pem",
        "NODE_TLS_REJECT_UNAUTHORIZED": "0",
        "HTTPS_PROXY": "http://old:1",
        "PATH": "/usr/bin",  # not a proxy variable: untouched
    }
    env = dict(before)
    with proxy_environ("http://my-proxy:3128", environ=env):
        assert env == {**CARTO_HTTP, "PATH": "/usr/bin"}
        # The block may change or add anything: all of it is put back.
        env["no_grpc_proxy"] = "added-inside"
        env["HTTPS_PROXY"] = "http://changed-inside:1"
        del env["PATH"]
    assert env == {name: value for name, value in before.items() if name != "PATH"}


def test_restores_even_when_the_block_raises() -> None:
    env = {"http_proxy": "http://old:1"}
    inside: dict[str, str] = {}

    def run() -> None:
        with proxy_environ(None, environ=env):
            inside.update(env)
            env["HTTPS_PROXY"] = "http://inside:1"
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert inside == {}
    assert env == {"http_proxy": "http://old:1"}


def test_refused_value_leaves_the_environment_untouched() -> None:
    env = {"https_proxy": "http://old:1"}
    with (
        pytest.raises(ConfigError, match="HTTP_PROXY"),
        proxy_environ("http://user:secret@proxy:3128", environ=env),
    ):
        pass  # pragma: no cover
    assert env == {"https_proxy": "http://old:1"}


def test_os_environ_is_the_default_and_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://machine-wide:8080")
    monkeypatch.setenv("no_proxy", "machine.local")
    with proxy_environ("http://my-proxy:3128", no_proxy="localhost") as config:
        assert managed(dict(os.environ)) == {
            **CARTO_HTTP,
            "NO_PROXY": "localhost",
            "no_proxy": "localhost",
        }
        assert ProxyConfig.from_env() == config
    assert os.environ["ALL_PROXY"] == "http://machine-wide:8080"
    assert os.environ["no_proxy"] == "machine.local"
    assert "NO_PROXY" not in os.environ
    assert "HTTPS_PROXY" not in os.environ


def test_config_is_written_through_to_env_with_overrides() -> None:
    source = ProxyConfig.from_env(
        environ={
            "HTTPS_PROXY": "http://p:3128",
            "NO_PROXY": "a.example",
            "NO_GRPC_PROXY": "g.example",
        }
    )
    env: dict[str, str] = {}
    with proxy_environ(source, environ=env) as config:
        assert env == source.to_env()
        assert config == source
    with proxy_environ(source, no_proxy="b.example", verify_proxy=False, environ=env) as config:
        assert env["NO_PROXY"] == env["no_proxy"] == "b.example"
        assert env["NO_GRPC_PROXY"] == "g.example"
        assert env["NODE_TLS_REJECT_UNAUTHORIZED"] == "0"
        assert config.route("https://b.example").rule is Rule.NO_PROXY
        assert config.route("https://a.example").action is Action.PROXY


def test_inline_ca_gets_a_temporary_file_removed_on_exit(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    pem = trustme.CA().cert_pem.bytes().decode()
    values = tmp_path / "values.yaml"
    indented = "\n".join("    " + line for line in pem.splitlines())
    values.write_text(
        'externalProxy:\n  enabled: true\n  host: proxy\n  port: "3128"\n  type: http\n'
        f"trustedCACerts:\n  value: |\n{indented}\n"
    )
    source = ProxyConfig.from_helm_values(values)
    assert source.extra_ca_pem
    assert source.extra_ca_file is None
    env: dict[str, str] = {}
    with proxy_environ(source, environ=env) as config:
        path = env["NODE_EXTRA_CA_CERTS"]
        assert Path(path).read_text() == source.extra_ca_pem
        assert config.extra_ca_pem == source.extra_ca_pem
    assert not Path(path).exists()
    assert env == {}


def test_recording_proxy_plain_and_tls() -> None:
    env: dict[str, str] = {}
    with RecordingProxy() as plain, proxy_environ(plain, environ=env):
        assert env["HTTPS_PROXY"] == env["grpc_proxy"] == plain.url
        assert "NODE_EXTRA_CA_CERTS" not in env
    with RecordingProxy(tls=True) as tls, proxy_environ(tls, environ=env) as config:
        assert env["https_proxy"] == tls.url
        assert tls.url.startswith("https://localhost:")
        assert "GRPC_PROXY" not in env  # gRPC cannot use an https:// proxy
        assert env["NODE_EXTRA_CA_CERTS"] == tls.ca_file
        assert config.extra_ca_pem == tls.ca_pem


def test_stopped_tls_proxy_stands_for_a_proxy_that_is_down() -> None:
    proxy = RecordingProxy(tls=True).start()
    proxy.stop()
    env: dict[str, str] = {}
    with proxy_environ(proxy, environ=env) as config:
        assert env["HTTPS_PROXY"] == proxy.url
        assert "NODE_EXTRA_CA_CERTS" not in env  # its CA file is gone with it
        assert config.https_proxy is not None
        assert config.https_proxy.port == proxy.port


def test_explicit_ca_file_and_verify_proxy(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    env: dict[str, str] = {}
    with proxy_environ("https://p:3129", ca_file=ca, verify_proxy=False, environ=env) as config:
        assert env["NODE_EXTRA_CA_CERTS"] == str(ca)
        assert env["NODE_TLS_REJECT_UNAUTHORIZED"] == "0"
        assert not config.verify_proxy


def test_none_clears_everything_but_may_keep_no_proxy() -> None:
    env = {"HTTP_PROXY": "http://x:1", "NODE_TLS_REJECT_UNAUTHORIZED": "0"}
    with proxy_environ(None, no_proxy=".internal", environ=env) as config:
        assert env == {"NO_PROXY": ".internal", "no_proxy": ".internal"}
        assert not config.has_proxy
    assert env == {"HTTP_PROXY": "http://x:1", "NODE_TLS_REJECT_UNAUTHORIZED": "0"}


def test_docstring_examples_run() -> None:
    result = doctest.testmod(environ_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- CAs compose -------------------------------------------------------------------------------


def test_the_proxys_ca_and_the_origins_are_trusted_at_once() -> None:
    # The "Without pytest" recipe with a TLS proxy: both hops are verified, from the environment.
    from carto_proxy.adapters import httpx as carto_httpx
    from carto_proxy.testing import LocalOrigin, assert_tunnelled

    with (
        LocalOrigin() as origin,
        RecordingProxy(tls=True, upstreams=origin.upstreams("api.example.test")) as proxy,
    ):
        with proxy_environ(proxy, ca_file=origin.ca_file) as config:
            bundle = os.environ["NODE_EXTRA_CA_CERTS"]
            assert bundle not in (proxy.ca_file, origin.ca_file)  # a file of both, made for it
            assert Path(bundle).read_text() == proxy.ca_pem + origin.ca_pem
            assert config.extra_ca_pem == proxy.ca_pem + origin.ca_pem
            with carto_httpx.client(timeout=5) as http:
                assert http.get("https://api.example.test/").status_code == 200
        assert not Path(bundle).exists()
        assert_tunnelled("api.example.test:443", proxy=proxy)


def test_a_configurations_ca_and_several_files_are_bundled(tmp_path: Path) -> None:
    pems = [trustme.CA().cert_pem.bytes().decode() for _ in range(3)]
    files = [tmp_path / f"ca{index}.pem" for index in range(3)]
    for file, pem in zip(files, pems, strict=True):
        file.write_text(pem)
    source = ProxyConfig.from_env(
        environ={"HTTPS_PROXY": "http://p:3128", "NODE_EXTRA_CA_CERTS": str(files[0])}
    )
    env: dict[str, str] = {}
    with proxy_environ(source, ca_file=[files[1], str(files[2]), files[1]], environ=env) as config:
        assert Path(env["NODE_EXTRA_CA_CERTS"]).read_text() == "".join(pems)  # once each
        assert config.extra_ca_pem == "".join(pems)


def test_a_ca_file_that_is_not_a_ca_is_named_and_nothing_is_set(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    env = {"HTTPS_PROXY": "http://before:1"}
    with (
        RecordingProxy(tls=True) as proxy,
        pytest.raises(ConfigError, match=r"junk\.pem"),
        proxy_environ(proxy, ca_file=junk, environ=env),
    ):
        pass
    assert env == {"HTTPS_PROXY": "http://before:1"}
