"""``--carto-proxy-audit``: a test whose code went around its proxy configuration fails.

While a test runs, an egress audit (:func:`carto_proxy.audit`) judges every lookup and
connection by the test's configuration: the ``carto_proxy_config`` it uses, else the
environment as :func:`~carto_proxy.testing.proxy_environ` sets it. A test that passed although
its code went around the proxy (a connector that swallowed the guard's refusal, or ran with
``block_direct=False``) fails, naming each host, how and where, and the route it should have
taken; a test that failed anyway gets the same list as a report section. The kit's own servers
are never counted (:mod:`carto_proxy._unaudited`).
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest

from carto_proxy._audit import Violation
from carto_proxy._config import ProxyConfig
from carto_proxy.exceptions import ConfigError
from carto_proxy.testing._block import Judge

__all__ = ["TestAudit"]

_FIX = (
    "Fix: send these through the proxy (a carto_proxy adapter, or the client's own proxy "
    "setting), or list the hosts that must go direct in NO_PROXY (the marker's no_proxy=)"
)


class TestAudit:
    """The audit of one test's call; a context manager.

    Args:
        item: the test, its fixtures set up.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self._violations: list[Violation] = []
        self._judge: Judge | None = None

    def __enter__(self) -> TestAudit:
        config = getattr(self._item, "funcargs", {}).get("carto_proxy_config")
        judge = Judge(
            config if isinstance(config, ProxyConfig) else None,
            on_violation=self._violations.append,
        )
        # An environment carto_proxy cannot read is unreadable for the code under test too.
        with contextlib.suppress(ConfigError):
            self._judge = judge.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._judge is not None:
            self._judge.__exit__()

    def fail(self) -> None:
        """Fail the test if its code went around the configuration.

        Raises:
            pytest.fail.Exception: with the list of what went around it.
        """
        if self._violations:
            pytest.fail(self._text(), pytrace=False)

    def report(self) -> None:
        """Add what went around the configuration to a failed test's report."""
        if self._violations:
            self._item.add_report_section("call", "carto-proxy-audit", self._text())

    def _text(self) -> str:
        counts = Counter(
            (v.authority, v.kind, v.where, v.route.proxy, v.route.variable, v.route.rule.value)
            for v in self._violations
        )
        lines = [
            f"carto_proxy audit: this test went around its proxy configuration "
            f"{len(self._violations)} time(s):"
        ]
        for (authority, kind, where, proxy, variable, rule), count in counts.items():
            verb = "looked up" if kind == "resolve" else "connected to"
            times = f" ({count} times)" if count > 1 else ""
            lines.append(
                f"  {authority} {verb} directly at {where}{times}: its route is through the "
                f"proxy {proxy} ({variable}, rule {rule})"
            )
        lines.append(_FIX)
        return "\n".join(lines)
