"""What the CLI tests share: CARTO's example files, variables in both cases, a captured run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

EXAMPLES = Path(__file__).parents[2] / "examples"
HTTP_ENV = EXAMPLES / "http-proxy.env"
HTTPS_ENV = EXAMPLES / "https-proxy.env"
HELM = EXAMPLES / "customizations.yaml"
SNOWFLAKE = "https://xy12345.eu-central-1.snowflakecomputing.com"

ROUTE_KEYS = {  # what route --json, egress --json and probe --json print for a route
    "action",
    "proxy",
    "rule",
    "reason",
    "target",
    "warehouse",
    "matched_entry",
    "needs_direct_egress",
    "variable",
}


def both(**variables: str) -> dict[str, str]:
    """Each variable in both cases, as CARTO asks."""
    out = {}
    for name, value in variables.items():
        out[name.upper()] = out[name.lower()] = value
    return out


HTTP_PROXY = both(http_proxy="http://my-proxy:3128", https_proxy="http://my-proxy:3128") | both(
    grpc_proxy="http://my-proxy:3128"
)


class Result(NamedTuple):
    """What one in-process run of ``carto-proxy`` returned and printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_subprocess(
    *argv: str, environ: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m carto_proxy ARGV`` with this process's environment minus every proxy
    and trust variable, plus *environ*."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("NODE_EXTRA_CA_CERTS", None)
    env.pop("NODE_TLS_REJECT_UNAUTHORIZED", None)
    return subprocess.run(
        [sys.executable, "-m", "carto_proxy", *argv],
        env=env | dict(environ or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
