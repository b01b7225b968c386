"""Fixtures for the CLI tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from carto_proxy.cli import main
from tests.cli.helpers import Result

Run = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Return ``run(*argv, environ=None) -> Result``: ``main`` in-process, output captured.

    *environ* is the environment the command reads; empty by default, never ``os.environ``.
    """

    def run(*argv: str, environ: Mapping[str, str] | None = None) -> Result:
        code = main(list(argv), environ={} if environ is None else environ)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
