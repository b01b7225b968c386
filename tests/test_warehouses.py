"""Warehouse rules and host detection (DESIGN §3.5)."""

from __future__ import annotations

import pytest

from carto_proxy import Warehouse
from carto_proxy._warehouses import RULES, detect


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("xy12345.eu-central-1.snowflakecomputing.com", Warehouse.SNOWFLAKE),
        ("snowflakecomputing.com", Warehouse.SNOWFLAKE),
        ("dbc-1234.cloud.databricks.com", Warehouse.DATABRICKS),
        ("adb-1.2.azuredatabricks.net", Warehouse.DATABRICKS),
        ("1234.5.gcp.databricks.com", Warehouse.DATABRICKS),
        ("c.abc.us-east-1.redshift.amazonaws.com", Warehouse.REDSHIFT),
        ("wg.123.eu-west-1.redshift-serverless.amazonaws.com", Warehouse.REDSHIFT),
        ("bigquery.googleapis.com", Warehouse.BIGQUERY),
        ("bigquerystorage.googleapis.com", Warehouse.BIGQUERY),
        ("storage.googleapis.com", None),
        ("notsnowflakecomputing.com", None),
        ("s3.amazonaws.com", None),
        ("auth.carto.com", None),
    ],
)
def test_detect(host: str, expected: Warehouse | None) -> None:
    assert detect(host) is expected


def test_rules_say_what_carto_documents() -> None:
    assert RULES[Warehouse.BIGQUERY].via_http_proxy
    assert RULES[Warehouse.BIGQUERY].via_https_proxy
    assert RULES[Warehouse.SNOWFLAKE].via_http_proxy
    assert not RULES[Warehouse.SNOWFLAKE].via_https_proxy
    assert RULES[Warehouse.POSTGRESQL].tcp
    assert RULES[Warehouse.REDSHIFT].tcp
    databricks = RULES[Warehouse.DATABRICKS]
    assert not (databricks.tcp)
    assert not (databricks.via_http_proxy)
    assert not (databricks.via_https_proxy)
