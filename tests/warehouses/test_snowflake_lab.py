"""Snowflake in the lab, on the installed driver line (5.x in ``tests``, 4.x in
``snowflake_classic``): every connection where its route says, or a refusal.

Snowflake traffic goes through an ``http://`` proxy and direct under an ``https://`` one
(CARTO's rule); connections the drivers open with clients of their own must follow the
route too, or the connection is refused (``CP402``) before any connection is made.
"""

from __future__ import annotations

import sys

import pytest

from tests.warehouses.conftest import record
from tests.warehouses.lab import ENVIRONMENTS, METADATA_NO_PROXY, Lab, Observation
from tests.warehouses.network import DIRECT, VIA_CONFIG
from tests.warehouses.standins import SNOWFLAKE_HOST, STAGE_HOST

pytest.importorskip("snowflake.connector")

from carto_proxy.adapters import snowflake

pytestmark = [pytest.mark.integration, pytest.mark.snowflake]

MAJOR = snowflake.driver_major()
ACCOUNT = f"{SNOWFLAKE_HOST}:443"
STAGE = f"{STAGE_HOST}:443"
OCSP = "ocsp.snowflakecomputing.com:80"
METADATA = "169.254.169.254:80"


def run(lab: Lab, scenario: str, environment: str, *, no_proxy: str = "") -> Observation:
    observation = record(lab.run(scenario, environment, sys.executable, no_proxy=no_proxy))
    assert observation.violations() == [], observation.summary()
    return observation


def snowflake_route(environment: str) -> str:
    return DIRECT if environment == "carto-https" else VIA_CONFIG


def went(observation: Observation) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for connection, _ in observation.connections:
        seen.setdefault(connection.authority, set()).add(connection.via)
    return seen


def assert_refused(observation: Observation) -> None:
    assert (observation.outcome.get("error"), observation.outcome.get("code")) == (
        "ConfigError",
        "CP402",
    ), observation.outcome
    assert observation.connections == []
    assert sum(observation.proxy_connections.values()) == 0


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("scenario", ["snowflake_query", "snowflake_sqlalchemy"])
def test_login_query_and_chunks(lab: Lab, scenario: str, environment: str) -> None:
    observation = run(lab, scenario, environment)
    assert observation.ok, observation.outcome
    assert observation.outcome["result"] == [1, 2, 3, 4]
    expected = {ACCOUNT: {snowflake_route(environment)}, STAGE: {snowflake_route(environment)}}
    if MAJOR < 5:  # the classic driver checks the account's certificate with OCSP
        expected[OCSP] = {snowflake_route(environment)}
    # Platform detection is off: no metadata probe.
    assert went(observation) == expected


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_result_batches_fetched_in_another_process(lab: Lab, environment: str) -> None:
    observation = run(lab, "snowflake_result_batches", environment)
    assert observation.ok, observation.outcome
    assert observation.outcome["result"] == [1, 2, 3, 4]
    # The worker had no connection: its chunk download followed the route all the same.
    assert went(observation)[STAGE] == {snowflake_route(environment)}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_platform_detection_is_opt_in_and_follows_the_route(lab: Lab, environment: str) -> None:
    # The probes ask the metadata server and AWS STS: both excluded, so that their route
    # (direct) is where a driver client following the environment goes too, but for one.
    excluded = f"{METADATA_NO_PROXY},sts.amazonaws.com"
    observation = run(lab, "snowflake_platform_detection", environment, no_proxy=excluded)
    if environment == "other-proxy":  # the driver's probes would go to the environment's proxy
        assert_refused(observation)
        return
    assert observation.ok, observation.outcome
    assert went(observation)[METADATA] == {DIRECT}  # NO_PROXY excludes it, in both


@pytest.mark.skipif(MAJOR < 5, reason="4.x downloads CRLs through its routed sessions")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_crl_checks_on_5x_are_refused_where_the_environment_disagrees(
    lab: Lab, environment: str
) -> None:
    assert_refused(run(lab, "snowflake_crl", environment))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_connect_kwargs(lab: Lab, environment: str) -> None:
    observation = run(lab, "snowflake_connect_kwargs", environment)
    if MAJOR < 5:
        assert_refused(observation)
        return
    assert observation.ok, observation.outcome
    route = snowflake_route(environment)
    assert went(observation) == {ACCOUNT: {route}, STAGE: {route}}
