"""What the httpx, urllib3 and requests adapters tell about their decisions, through a real Squid.

Each case sends real requests through the session's Squid to local origins and checks what
observers, the ``carto_proxy.route`` log, errors, ``route_for`` and the egress audit say. An
adapter's test module subclasses :class:`ObservedAdapterCases`, providing the ``driver``
fixture of :mod:`tests.adapters.http_cases` and :meth:`ObservedAdapterCases.route_for`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

import pytest

from carto_proxy import Action, ProxyConfig, Route, RouteEvent, audit, observe
from tests.adapters.http_cases import (
    SHORT_TIMEOUT,
    Driver,
    Fetcher,
    Redirector,
    closed_port,
    error_text,
    make_config,
    make_hostile,
    running_redirector,
    token,
)
from tests.support.names import API_HOST, DIRECT_HOST, LOOPBACK
from tests.support.origins import Origins
from tests.support.pki import PKI
from tests.support.resolver import FakeDNS
from tests.support.squid import Squid


@pytest.mark.integration
class ObservedAdapterCases:
    """Integration cases about observability; a subclass provides ``driver`` and route_for."""

    @pytest.fixture(autouse=True)
    def hostile_environ(self, monkeypatch: pytest.MonkeyPatch) -> None:
        make_hostile(monkeypatch)

    @pytest.fixture
    def config(self, squid: Squid, pki: PKI, fake_dns: FakeDNS) -> ProxyConfig:
        """Squid for every http(s) target, DIRECT_HOST direct."""
        return make_config(squid.http_url, pki.origin_ca_path, no_proxy=DIRECT_HOST)

    @pytest.fixture
    def redirector(self) -> Any:
        with running_redirector() as server:
            yield server

    @abstractmethod
    def route_for(self, fetcher: Fetcher, url: str) -> Route:
        """The adapter module's ``route_for`` applied to *fetcher*'s client."""

    def adapter(self, driver: Driver) -> str:
        return driver.name.partition("-")[0]

    def test_each_request_is_one_event_and_one_debug_record(
        self,
        driver: Driver,
        config: ProxyConfig,
        origins: Origins,
        squid: Squid,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        prefix = token(driver)
        proxied = origins.https.url_for(API_HOST, f"{prefix}/p?key=s3cret")
        direct = origins.https.url_for(DIRECT_HOST, f"{prefix}/d")
        events: list[RouteEvent] = []
        with (
            caplog.at_level(logging.DEBUG, logger="carto_proxy.route"),
            observe(events.append),
            driver.client(config) as client,
        ):
            assert client.get(proxied).status == 200
            assert client.get(direct).status == 200
        name, port = self.adapter(driver), origins.https.port
        assert [(e.adapter, e.method, e.url, e.hop, e.route.action) for e in events] == [
            (name, "GET", f"https://{API_HOST}:{port}{prefix}/p", 0, Action.PROXY),
            (name, "GET", f"https://{DIRECT_HOST}:{port}{prefix}/d", 0, Action.DIRECT),
        ]
        records = [r for r in caplog.records if r.name == "carto_proxy.route"]
        assert [r.getMessage() for r in records] == [
            f"GET https://{API_HOST}:{port}{prefix}/p → PROXY via {squid.http_url} "
            f"(rule proxy, HTTPS_PROXY) [{name}]",
            f"GET https://{DIRECT_HOST}:{port}{prefix}/d → DIRECT "
            f"(rule no_proxy, NO_PROXY entry '{DIRECT_HOST}') [{name}]",
        ]
        assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
        assert [r.carto_proxy_route for r in records] == [e.route for e in events]
        assert "s3cret" not in caplog.text

    def test_events_number_the_hops_of_a_redirect_chain(
        self, driver: Driver, config: ProxyConfig, origins: Origins, redirector: Redirector
    ) -> None:
        prefix = token(driver)
        landing = origins.https.url_for(DIRECT_HOST, f"{prefix}/landed")
        second = redirector.url(DIRECT_HOST, f"{prefix}/second", landing)
        first = redirector.url(API_HOST, f"{prefix}/first", second)
        events: list[RouteEvent] = []
        with observe(events.append), driver.client(config) as client:
            assert client.get(first).body["path"] == f"{prefix}/landed"
            assert client.get(landing).status == 200  # a new request: hop 0 again
        assert [(e.hop, e.route.target.host, e.route.action) for e in events] == [
            (0, API_HOST, Action.PROXY),
            (1, DIRECT_HOST, Action.DIRECT),
            (2, DIRECT_HOST, Action.DIRECT),
            (0, DIRECT_HOST, Action.DIRECT),
        ]
        assert events[0].url == f"http://{API_HOST}:{redirector.server_port}{prefix}/first"

    def test_route_for_tells_no_one(
        self, driver: Driver, config: ProxyConfig, origins: Origins
    ) -> None:
        url = origins.https.url_for(API_HOST, "/asked")
        events: list[RouteEvent] = []
        with driver.client(config) as client, observe(events.append):
            asked = self.route_for(client, url)
            assert events == []
            client.get(url)
        assert asked == events[0].route
        assert (asked.action, asked.proxy) == (Action.PROXY, config.https_proxy)

    @pytest.mark.parametrize("through", ["proxy", "direct"])
    def test_connection_errors_name_the_route(
        self, driver: Driver, pki: PKI, origins: Origins, fake_dns: FakeDNS, through: str
    ) -> None:
        dead = closed_port()
        config = make_config(f"http://{LOOPBACK}:{dead}", pki.origin_ca_path, no_proxy=DIRECT_HOST)
        host, port = (API_HOST, origins.https.port) if through == "proxy" else (DIRECT_HOST, dead)
        with (
            driver.client(config, timeout=SHORT_TIMEOUT) as client,
            pytest.raises(driver.error) as failure,
        ):
            client.get(f"https://{host}:{port}/refused")
        via = f"through the proxy http://{LOOPBACK}:{dead} (HTTPS_PROXY), rule proxy"
        if through == "direct":
            via = "directly, rule no_proxy"
        named = f"[carto_proxy: https://{host}:{port} {via}]"
        assert named in str(failure.value)
        assert error_text(failure.value).count("[carto_proxy: ") >= 1

    @pytest.mark.parametrize("proxy_host", [LOOPBACK, "localhost"])
    def test_adapter_traffic_is_never_a_violation(
        self,
        driver: Driver,
        pki: PKI,
        squid: Squid,
        origins: Origins,
        fake_dns: FakeDNS,
        redirector: Redirector,
        proxy_host: str,
    ) -> None:
        # The proxy given by address and by name: its lookup and connection are the proxy's.
        proxy = f"http://{proxy_host}:{squid.http_port}"
        config = make_config(proxy, pki.origin_ca_path, no_proxy=DIRECT_HOST)
        prefix = token(driver)
        landing = origins.https.url_for(API_HOST, f"{prefix}/landed")
        with audit(config, on_violation="raise") as watching, driver.client(config) as client:
            assert client.get(origins.http.url_for(API_HOST, f"{prefix}/plain")).status == 200
            assert client.get(origins.https.url_for(API_HOST, f"{prefix}/tls")).status == 200
            assert client.get(origins.https.url_for(DIRECT_HOST, f"{prefix}/d")).status == 200
            assert client.get(redirector.url(DIRECT_HOST, prefix, landing)).status == 200
        assert watching.violations == []
        if proxy_host == "localhost":
            assert fake_dns.resolved("localhost")  # the name was looked up, and judged fine
        assert not fake_dns.resolved(API_HOST)

    def test_the_current_span_gets_the_route(
        self, driver: Driver, config: ProxyConfig, origins: Origins
    ) -> None:
        sdk = pytest.importorskip("opentelemetry.sdk.trace")
        export = pytest.importorskip("opentelemetry.sdk.trace.export")
        memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
        exporter = memory.InMemorySpanExporter()
        provider = sdk.TracerProvider()
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer(__name__)
        with driver.client(config) as client:
            with tracer.start_as_current_span("proxied"):
                client.get(origins.https.url_for(API_HOST, "/traced"))
            with tracer.start_as_current_span("direct"):
                client.get(origins.https.url_for(DIRECT_HOST, "/traced"))
        spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
        assert spans["proxied"] == {
            "carto_proxy.action": "proxy",
            "carto_proxy.rule": "proxy",
            "carto_proxy.proxy": str(config.https_proxy),
        }
        assert spans["direct"] == {
            "carto_proxy.action": "direct",
            "carto_proxy.rule": "no_proxy",
            "carto_proxy.matched_entry": DIRECT_HOST,
        }
