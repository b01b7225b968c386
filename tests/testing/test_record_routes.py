"""record_routes collects, in order, the decisions adapters act on, and nothing else."""

from __future__ import annotations

import doctest
import threading
from typing import Any

import pytest

from carto_proxy import Action, Protocol, ProxyConfig, Route, Rule
from carto_proxy.adapters._common import report_route
from carto_proxy.testing import _records as records_module
from carto_proxy.testing import record_routes

CONFIG = ProxyConfig.from_env(
    environ={
        "HTTPS_PROXY": "http://proxy.corp:3128",
        "HTTP_PROXY": "http://proxy.corp:3128",
        "NO_PROXY": ".internal,localhost",
    }
)


def report(target: str, **kwargs: Any) -> Route:
    """What an adapter does for each request: route it and publish the decision."""
    return report_route(CONFIG, target, adapter="test", **kwargs)


def test_routes_arrive_in_order_with_their_reasons() -> None:
    with record_routes() as routes:
        report("https://api.example.com/v1")
        report("https://db.internal/query")
        report("postgresql://user@warehouse.example:5432/carto")
        report("bigquerystorage.googleapis.com:443", protocol=Protocol.GRPC)
    summary = [(r.target.authority, r.action, r.rule, r.matched_entry) for r in routes]
    assert summary == [
        ("api.example.com:443", Action.PROXY, Rule.PROXY, None),
        ("db.internal:443", Action.DIRECT, Rule.NO_PROXY, ".internal"),
        ("warehouse.example:5432", Action.DIRECT, Rule.TCP_BYPASS, None),
        ("bigquerystorage.googleapis.com:443", Action.PROXY, Rule.PROXY, None),
    ]
    assert routes[0].proxy is not None
    assert str(routes[0].proxy) == "http://proxy.corp:3128"
    assert "'.internal'" in routes[1].reason


def test_only_decisions_inside_the_block_are_recorded() -> None:
    report("https://before.example")
    with record_routes() as routes:
        report("https://during.example")
    report("https://after.example")
    assert [r.target.host for r in routes] == ["during.example"]


def test_questions_asked_of_the_config_are_not_connections() -> None:
    with record_routes() as routes:
        CONFIG.route("https://api.example.com")
    assert routes == []


def test_repeated_decisions_are_each_recorded() -> None:
    # route() caches; the observer must still see every decision an adapter acts on.
    with record_routes() as routes:
        for _ in range(3):
            report("https://api.example.com/same")
    assert len(routes) == 3


def test_nested_recorders_each_see_their_own_span() -> None:
    with record_routes() as outer:
        report("https://one.example")
        with record_routes() as inner:
            report("https://two.example")
        report("https://three.example")
    assert [r.target.host for r in outer] == ["one.example", "two.example", "three.example"]
    assert [r.target.host for r in inner] == ["two.example"]


def test_the_recorder_detaches_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), record_routes() as routes:
        raise RuntimeError
    report("https://later.example")
    assert routes == []


def test_decisions_from_other_threads_are_recorded() -> None:
    hosts = [f"h{i}.example" for i in range(40)]
    barrier = threading.Barrier(len(hosts))

    def work(host: str) -> None:
        barrier.wait(timeout=10)
        report(f"https://{host}/")

    with record_routes() as routes:
        threads = [threading.Thread(target=work, args=(host,)) for host in hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert sorted(r.target.host for r in routes) == sorted(hosts)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(records_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
