"""Test host names shared by the PKI, Squid's hosts_file and the fake resolver.

Every name is under a reserved TLD (``.test``, RFC 6761) except the Snowflake account host,
which has to look real for warehouse detection; all of them map to loopback.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

LOOPBACK: Final = "127.0.0.1"

API_HOST: Final = "api.example.test"
"""Reached through the proxy; Squid's hosts_file maps it to loopback."""
DIRECT_HOST: Final = "direct.example.test"
"""Reached without the proxy; the fake resolver maps it to loopback in the test process."""
DENIED_HOST: Final = "denied.example.test"
"""Refused with 403 by the session Squid (``deny_domains``)."""
SNOWFLAKE_HOST: Final = "xy12345.eu-central-1.snowflakecomputing.com"

TEST_HOSTS: Final = MappingProxyType(
    {
        API_HOST: LOOPBACK,
        DIRECT_HOST: LOOPBACK,
        DENIED_HOST: LOOPBACK,
        SNOWFLAKE_HOST: LOOPBACK,
    }
)
"""Name → IPv4 address for every test host (Squid's hosts_file and the fake resolver)."""

ORIGIN_CERT_NAMES: Final = (
    "localhost",
    LOOPBACK,
    API_HOST,
    DIRECT_HOST,
    DENIED_HOST,
    SNOWFLAKE_HOST,
    "*.example.test",
)
"""Names the gRPC origin's certificate holds (the HTTP origins make one for any name)."""

PROXY_CERT_NAMES: Final = ("localhost", LOOPBACK, "::1")
"""Names in Squid's TLS listener certificate."""
