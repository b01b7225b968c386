"""The lab's fixtures, and its table in the terminal summary (path × environment → where the
connections went)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import PKI
from tests.support.squid import unavailable
from tests.warehouses.lab import Lab, Observation, start_lab
from tests.warehouses.network import private_network_namespace

OBSERVED: dict[tuple[str, str], Observation] = {}


@pytest.fixture(scope="session")
def lab(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The running lab; it needs root in a private network namespace (CI runs the suite so)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        unavailable("the warehouse lab needs root, unshare and ip")
    if not private_network_namespace():
        unavailable("the warehouse lab needs a private network namespace (unshare -n)")
    with start_lab(pki, Path(tmp_path_factory.mktemp("lab"))) as running:
        yield running


def record(observation: Observation) -> Observation:
    """Keep *observation* for the table."""
    OBSERVED[(observation.label, observation.environment)] = observation
    return observation


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OBSERVED:
        return
    terminalreporter.section("warehouse lab: path × environment → where the connections went")
    for (label, environment), observation in sorted(OBSERVED.items()):
        terminalreporter.write_line(f"{label} | {environment} | {observation.summary()}")
