"""BigQuery, pandas-gbq and google-auth in the lab: every connection where its route says.

Each path runs in the three environments; each connection a stand-in accepted is held against
the configuration's route (through the config proxy, or direct), none may reach the
environment's proxy, and no name may be sent to DNS.
"""

from __future__ import annotations

import sys

import pytest

from tests.warehouses.conftest import record
from tests.warehouses.lab import ENVIRONMENTS, METADATA_NO_PROXY, Lab, Observation
from tests.warehouses.network import DIRECT, VIA_CONFIG
from tests.warehouses.standins import STORAGE_HOST

pytest.importorskip("pandas_gbq")
pytest.importorskip("google.cloud.bigquery_storage_v1")

pytestmark = pytest.mark.integration

REST = "bigquery.googleapis.com:443"
TOKEN = "oauth2.googleapis.com:443"
METADATA = "169.254.169.254:80"


def run(lab: Lab, scenario: str, environment: str, *, no_proxy: str = "") -> Observation:
    observation = record(lab.run(scenario, environment, sys.executable, no_proxy=no_proxy))
    assert observation.ok, observation.outcome
    assert observation.violations() == [], observation.summary()
    return observation


def went(observation: Observation) -> dict[str, set[str]]:
    """authority → how its connections went."""
    seen: dict[str, set[str]] = {}
    for connection, _ in observation.connections:
        seen.setdefault(connection.authority, set()).add(connection.via)
    return seen


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_pandas_read_gbq(lab: Lab, environment: str) -> None:
    observation = run(lab, "pandas_read_gbq", environment)
    seen = went(observation)
    assert seen[REST] == seen[TOKEN] == {VIA_CONFIG}
    if environment == "carto-https":  # gRPC cannot use an https:// proxy: REST paging
        assert observation.outcome["result"] == ["carto", "proxy", "tunnel"]
        assert f"{STORAGE_HOST}:443" not in seen
    else:  # the Storage stand-in holds two rows
        assert observation.outcome["result"] == ["carto", "proxy"]
        assert seen[f"{STORAGE_HOST}:443"] == {VIA_CONFIG}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_pandas_to_gbq(lab: Lab, environment: str) -> None:
    lab_google = lab  # the requests land on the Google stand-in: a lookup, a creation, a load
    observation = run(lab_google, "pandas_to_gbq", environment)
    assert observation.outcome["result"] == "loaded"
    assert went(observation) == {REST: {VIA_CONFIG}, TOKEN: {VIA_CONFIG}}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("excluded", [False, True], ids=["metadata-proxied", "metadata-excluded"])
@pytest.mark.parametrize("scenario", ["bigquery_gce", "bigquery_credentials_without_project"])
def test_metadata_server_follows_no_proxy(
    lab: Lab, scenario: str, excluded: bool, environment: str
) -> None:
    observation = run(lab, scenario, environment, no_proxy=METADATA_NO_PROXY if excluded else "")
    assert observation.outcome["result"] == ["carto-test", 2]
    seen = went(observation)
    # Project, universe domain, account and token all come from the metadata server, which
    # goes direct only when NO_PROXY says so.
    assert seen[METADATA] == {DIRECT if excluded else VIA_CONFIG}
    assert seen[REST] == {VIA_CONFIG}
