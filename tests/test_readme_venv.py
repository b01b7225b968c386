"""The README's venv runs the tests: ``pip install -e '.[all]'`` brings what pytest's
configuration needs, so ``pytest examples/connector`` and ``pytest tests/test_routing.py`` work.

Checked without building a venv: pytest runs in a process that can import only the
distributions ``carto-proxy[all]`` requires, and loads only their pytest plugins. Whatever
else this machine has (pytest-timeout, hypothesis, respx...) is as good as not installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# Block the modules given, then run pytest with the arguments given.
RUN = """
import sys
blocked, args = set(sys.argv[1].split(",")), sys.argv[2:]

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    def pytest_configure(self, config):
        sys.meta_path.insert(0, self)  # ahead of pytest's assertion rewriter, installed by now

sys.meta_path.insert(0, NotInstalled())
import pytest
sys.exit(pytest.main(args, plugins=[sys.meta_path[0]]))
"""


def required_by(name: str, extras: frozenset[str]) -> set[str]:
    """The distributions *name* with *extras* needs, itself included, installed or not."""
    found: set[str] = set()
    todo = [(name, extras)]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in done:
            continue
        done.add((key, extras))
        found.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not on this platform (a marker said so): nothing under it either
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def test_the_all_extra_runs_the_example_and_the_routing_tests() -> None:
    allowed = required_by("carto-proxy", frozenset({"all"}))
    assert {"pytest", "trustme", "httpx", "h11"} <= allowed  # the walk itself works
    others = [
        dist
        for dist in metadata.distributions()
        if canonicalize_name(dist.metadata["Name"]) not in allowed
    ]
    blocked = sorted(
        module
        for module, owners in metadata.packages_distributions().items()
        if not {canonicalize_name(owner) for owner in owners} & allowed
    )
    assert "respx" in blocked  # a library the example's unit tests use, in no extra
    plugins_off = [
        arg
        for dist in others
        for entry in dist.entry_points
        if entry.group == "pytest11"
        for arg in ("-p", f"no:{entry.name}")
    ]
    paths = ["examples/connector", "tests/test_routing.py"]
    result = subprocess.run(
        [sys.executable, "-c", RUN, ",".join(blocked), *plugins_off, "-q", "-rs", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown config option" not in output
    summary = re.search(r"(\d+) passed, (\d+) skipped", output)
    assert summary is not None, output
    assert int(summary[1]) >= 45  # the routing tables and the example's tests ran
    assert int(summary[2]) == 1  # the example's respx unit tests, as a module: said why
    assert "pip install respx" in output
