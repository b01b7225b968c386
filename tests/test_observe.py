"""Observers, the carto_proxy.route and carto_proxy.config logs, and what they never show.

Decisions are published the way every adapter publishes them (``report_route``); the
adapters' own cases, through a real Squid, are in tests/adapters/observe_cases.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carto_proxy import ProxyConfig, Route, RouteEvent, add_observer, observe
from carto_proxy.adapters._common import report_route

CONFIG = ProxyConfig.from_env(
    environ={
        "HTTP_PROXY": "http://proxy.corp:3128",
        "HTTPS_PROXY": "https://tls-proxy.corp:3129",
        "NO_PROXY": ".internal",
    }
)


def report(target: str, **kwargs: Any) -> Route:
    return report_route(CONFIG, target, adapter="httpx", **kwargs)


class Records(logging.Handler):
    """Every record of carto_proxy's loggers, at DEBUG, formatted as a handler would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Each record formatted, and every attribute it carries."""
        return "\n".join(f"{self.format(r)} {vars(r)!r}" for r in self.records)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("carto_proxy")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_add_observer_returns_its_removal() -> None:
    events: list[RouteEvent] = []
    remove = add_observer(events.append)
    report("https://api.example.com/a")
    remove()
    remove()  # twice is harmless
    report("https://api.example.com/b")
    assert [e.url for e in events] == ["https://api.example.com:443/a"]


def test_events_carry_the_adapter_method_redacted_url_and_hop() -> None:
    with observe((events := []).append):
        report(
            "https://api.example.com",
            method="POST",
            url="https://me:pw@API.Example.com/v1/x?token=t#frag",
            hop=lambda: 2,
        )
        report_route(CONFIG, "bigquerystorage.googleapis.com:443", adapter="grpc")
    assert [tuple(e)[1:] for e in events] == [
        ("httpx", "POST", "https://api.example.com:443/v1/x", 2),
        ("grpc", None, "https://bigquerystorage.googleapis.com:443", 0),
    ]
    assert events[0].route == CONFIG.route("https://api.example.com")


def test_an_observer_that_raises_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: RouteEvent) -> None:
        raise RuntimeError("observer bug")

    heard: list[RouteEvent] = []
    with observe(broken), observe(heard.append), caplog.at_level(logging.ERROR):
        route = report("https://api.example.com")
    assert route.proxy is not None
    assert len(heard) == 1
    (record,) = [r for r in caplog.records if r.name == "carto_proxy.route"]
    assert "observer" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "observer bug"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://api.example.com", "→ PROXY via http://proxy.corp:3128 (rule proxy, HTTP_PROXY)"),
        ("https://db.internal", "→ DIRECT (rule no_proxy, NO_PROXY entry '.internal')"),
        ("grpc://x.example.com", "→ DIRECT (rule grpc_https_unsupported)"),
        ("postgresql://db.example.com", "→ DIRECT (rule tcp_bypass)"),
    ],
)
def test_debug_records_say_where_and_why(records: Records, target: str, expected: str) -> None:
    report(target, method="GET")
    messages = [r.getMessage() for r in records.records if r.levelno == logging.DEBUG]
    assert len(messages) == 1
    assert expected in messages[0]
    assert messages[0].endswith("[httpx]")


def test_a_missing_proxy_variable_is_named(records: Records) -> None:
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "http://proxy.corp:3128"})
    report_route(config, "http://api.example.com/", adapter="requests", method="GET")
    assert records.records[-1].getMessage() == (
        "GET http://api.example.com:80/ → DIRECT (rule no_proxy_configured, HTTP_PROXY unset) "
        "[requests]"
    )


def test_direct_egress_is_warned_once_per_route(caplog: pytest.LogCaptureFixture) -> None:
    # Snowflake cannot use an https:// proxy: the firewall must let it out directly.
    config = ProxyConfig.from_env(environ={"HTTPS_PROXY": "https://tls.corp:3129"})
    account = "https://once-only-account.snowflakecomputing.com"
    with caplog.at_level(logging.WARNING, logger="carto_proxy.route"):
        for _ in range(3):
            report_route(config, account, adapter="snowflake")
    (record,) = [r for r in caplog.records if r.name == "carto_proxy.route"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "rule warehouse_https_unsupported" in message
    assert "must allow direct egress to once-only-account.snowflakecomputing.com:443" in message
    assert record.carto_proxy_route.needs_direct_egress


def test_nobody_listening_costs_one_check() -> None:
    pytest.importorskip("opentelemetry.trace")
    # Nothing is built, logged or looked up when no one would hear it.
    code = (
        "import sys, logging\n"
        "from carto_proxy import ProxyConfig\n"
        "from carto_proxy import _observe\n"
        "config = ProxyConfig.from_env(environ={'HTTPS_PROXY': 'http://p:3128'})\n"
        "route = config.route('https://api.example.com')\n"
        "print(_observe.watched(route), 'opentelemetry' in sys.modules)\n"
        "import opentelemetry.trace\n"
        "print(_observe.watched(route))\n"
    )
    out = run_python(code)
    assert out.split() == ["False", "False", "True"]


def test_without_opentelemetry_nothing_is_imported_and_adapters_work() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # not installed\n"
        "from carto_proxy import ProxyConfig, observe\n"
        "from carto_proxy.adapters.urllib3 import pool_manager\n"
        "config = ProxyConfig.from_env(environ={'HTTPS_PROXY': 'http://p:3128'})\n"
        "seen = []\n"
        "with observe(seen.append):\n"
        "    pool_manager(config).connection_from_url('https://api.example.com')\n"
        "print(len(seen), [m for m in sys.modules if m.startswith('opentelemetry.')])\n"
    )
    assert run_python(code) == "1 []"


def test_unconfigured_logging_prints_nothing() -> None:
    # A library's records go to the application's handlers; without any, nothing is printed.
    code = (
        "import logging\n"
        "from carto_proxy import ProxyConfig\n"
        "from carto_proxy.adapters._common import report_route\n"
        "environ = {'HTTPS_PROXY': 'https://tls:3129', 'http_proxy': 'x:1'}\n"
        "c = ProxyConfig.from_env(environ=environ)\n"
        "report_route(c, 'https://a.snowflakecomputing.com', adapter='snowflake')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert (result.stdout, result.stderr) == ("", "")


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


# -- carto_proxy.config --------------------------------------------------------------------------


def test_reading_a_configuration_says_which_variable_each_value_came_from(
    records: Records,
) -> None:
    # Values no other test uses: each warning is logged once per process.
    ProxyConfig.from_env(
        environ={
            "https_proxy": "http://logged.corp:3128",
            "HTTPS_PROXY": "http://other-logged.corp:3128",
            "HTTP_PROXY": "logged.corp:3128",
            "NO_PROXY": ",".join(f"host{i}.internal" for i in range(12)),
        }
    )
    (info,) = [r for r in records.records if r.levelno == logging.INFO]
    assert info.name == "carto_proxy.config"
    assert info.getMessage() == (
        "ProxyConfig read from the environment: "
        "HTTP_PROXY=http://logged.corp:3128 (from HTTP_PROXY); "
        "HTTPS_PROXY=http://logged.corp:3128 (from https_proxy; HTTPS_PROXY differs and is "
        "ignored); "
        "NO_PROXY=" + ",".join(f"host{i}.internal" for i in range(8)) + ",… (12 entries) "
        "(from NO_PROXY)"
    )
    warned = {r.carto_proxy_code for r in records.records if r.levelno == logging.WARNING}
    assert {"CP103", "CP104"} <= warned


def test_each_warning_is_logged_once_per_process(records: Records) -> None:
    environ = {"HTTPS_PROXY": "http://once.corp:3128", "https_proxy": "http://twice.corp:3128"}
    for _ in range(3):
        ProxyConfig.from_env(environ=environ)
    differ = [r for r in records.records if getattr(r, "carto_proxy_code", None) == "CP103"]
    assert len(differ) == 1
    assert "(read from the environment)" in differ[0].getMessage()


# -- secrets never appear ----------------------------------------------------------------------

# Letters and digits behind a marker, so that a secret cannot be a word of the log by chance.
SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=16).map(
    lambda text: f"Zq{text}"
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user=SECRET,
    password=SECRET,
    query=SECRET,
    host=st.sampled_from(["api.example.com", "db.internal", "[::1]"]),
)
def test_no_record_or_event_holds_user_info_or_a_query(
    records: Records, user: str, password: str, query: str, host: str
) -> None:
    records.records.clear()
    url = f"https://{user}:{password}@{host}:8443/v1/items?key={query}#{query}"
    with observe((events := []).append):
        report(url, method="GET")
        report_route(CONFIG, url, adapter="urllib3", url=url, hop=1)
    environ = {
        "https_proxy": "http://proxy.corp:3128",
        "HTTPS_PROXY": f"http://{user}:{password}@proxy.corp:3128",  # loses to the lowercase
        "NO_PROXY": f"{user}:{password}@db.internal,.internal",
    }
    ProxyConfig.from_env(environ=environ)
    seen = records.text() + json.dumps([repr(e) for e in events])
    for secret in (user, password, query):
        assert secret not in seen
    assert len(events) == 2
    assert records.records  # something was logged: the test would catch a leak
