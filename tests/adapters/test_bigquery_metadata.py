"""carto_proxy.adapters.bigquery: google-auth's metadata-server side calls use routed requests.

Compute Engine credentials look their universe domain up with a request of their own, and
google-cloud-core finds the project of ``credentials=`` without ``project=`` with
``google.auth.default()``: both would read only the environment. The lab
(``tests/warehouses``) proves where those connections go; these tests pin which request
object the adapter hands google-auth.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.auth import compute_engine
from google.auth.credentials import AnonymousCredentials

from carto_proxy import ProxyConfig
from carto_proxy.adapters import bigquery as adapter

SQUID = "http://squid.internal:3128"


class Response:
    def __init__(self, data: bytes) -> None:
        self.status = 200
        self.headers = {"content-type": "application/text", "metadata-flavor": "Google"}
        self.data = data


class RecordingRequest:
    """A google-auth transport request that answers like the metadata server and records."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.urls: list[str] = []

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Response:
        self.urls.append(url)
        return Response(self.answer)


def test_compute_engine_universe_domain_is_looked_up_with_the_given_request() -> None:
    request = RecordingRequest(b"example-universe.com")
    credentials = adapter._with_universe_domain(compute_engine.Credentials(), request)
    assert [url.rsplit("/v1/", 1)[1] for url in request.urls] == ["universe/universe-domain"]
    # Known from now on: reading it makes no request of google-auth's own.
    assert credentials.universe_domain == "example-universe.com"


def test_other_credentials_are_left_alone() -> None:
    request = RecordingRequest(b"unused")
    anonymous = AnonymousCredentials()
    assert adapter._with_universe_domain(anonymous, request) is anonymous
    known = compute_engine.Credentials(universe_domain="googleapis.com")
    assert adapter._with_universe_domain(known, request) is known
    assert request.urls == []


def test_project_of_given_credentials_is_found_with_routed_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    calls: list[dict[str, Any]] = []

    def fake_default(**kwargs: Any) -> tuple[Any, str]:
        calls.append(kwargs)
        return AnonymousCredentials(), "adc-project"

    monkeypatch.setattr(adapter.google_auth, "default", fake_default)
    config = ProxyConfig.from_env(environ={"http_proxy": SQUID, "https_proxy": SQUID})
    options = {"api_endpoint": "https://bigquery.example.test"}
    with adapter.client(config, credentials=AnonymousCredentials(), client_options=options) as c:
        assert c.project == "adc-project"
    (call,) = calls
    adapter_of = call["request"].session.get_adapter("http://metadata.google.internal/")
    assert adapter_of.carto_proxy_config is config
