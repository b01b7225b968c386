"""Development sessions: `nox -s tests` (the whole suite), `lint`, `mypy`, `docs`, `bench`,
and `fuzz` (long property runs, not in the default sessions)."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "lint", "mypy", "docs"]
nox.options.error_on_missing_interpreters = True

TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "respx>=0.22",
    "trustme>=1.1",
    "pyarrow",  # the BigQuery Storage stand-in answers in Arrow
    "opentelemetry-sdk>=1.20",  # span attributes, read back with its in-memory exporter
    "yarl",  # route() takes yarl.URL objects
]
# The Snowflake adapter supports two driver lines that behave differently behind a proxy:
# 5.x (Rust core) runs with the whole suite, the classic 4.x line in a session of its own.
SNOWFLAKE_CURRENT = "snowflake-connector-python>=5,<6"
SNOWFLAKE_CLASSIC = "snowflake-connector-python>=4.8,<5"
# With 4.x, pip picks snowflake-sqlalchemy 1.x, which does not run on SQLAlchemy 2.1; boto3 is
# what 4.x's platform detection uses (the lab proves it stays off).
CLASSIC_EXTRAS = ["SQLAlchemy>=2,<2.1", "boto3"]
# The oldest aiohttp the adapter supports (its extra says aiohttp>=3.9).
AIOHTTP_OLDEST = "aiohttp==3.9.5"


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test (unit and integration, with a real Squid), then the Snowflake 4.x tests."""
    session.install("-e", ".[all]", SNOWFLAKE_CURRENT, *TEST_DEPS)
    run_loopback_only(session, "pytest", *session.posargs)
    session.notify("snowflake_classic")


@nox.session(name="snowflake_classic")
def snowflake_classic(session: nox.Session) -> None:
    """Run the Snowflake adapter's tests, and the lab's Snowflake paths, against 4.x."""
    session.install("-e", ".[all]", SNOWFLAKE_CLASSIC, *CLASSIC_EXTRAS, *TEST_DEPS)
    tests = [
        "tests/adapters/test_snowflake.py",
        "tests/adapters/test_snowflake_clients.py",
        "tests/warehouses/test_snowflake_lab.py",
    ]
    run_loopback_only(session, "pytest", *tests, *session.posargs)


@nox.session(name="aiohttp_oldest")
def aiohttp_oldest(session: nox.Session) -> None:
    """Run the aiohttp adapter's tests against the oldest aiohttp it supports (3.9).

    Not part of ``tests``: aiohttp 3.9 leaves the transports of failed TLS handshakes to the
    garbage collector, whose ResourceWarnings (ignored here) and asyncio error logs make an
    occasional run fail in whichever test comes next.
    """
    session.install("-e", ".[all]", AIOHTTP_OLDEST, *TEST_DEPS)
    warnings = ("-W", "ignore::pytest.PytestUnraisableExceptionWarning")
    run_loopback_only(
        session, "pytest", *warnings, "tests/adapters/test_aiohttp.py", *session.posargs
    )


def run_loopback_only(session: nox.Session, *args: str) -> None:
    """Run *args* in a private network namespace with only loopback, where the machine allows.

    A safety net: no test, and no client library's own probes (Snowflake's metadata-server
    detection, DNS), can reach beyond 127.0.0.1/::1 even by mistake. Needs root (Squid drops
    to its own user, which an unprivileged namespace cannot map), util-linux and iproute2.
    """
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        script = 'ip link set lo up && exec "$@"'
        session.run("unshare", "-n", "sh", "-c", script, "sh", *args, external=True)
    else:
        session.run(*args)


@nox.session
def core(session: nox.Session) -> None:
    """Run the core's tests with no optional dependency installed (extras stay optional)."""
    session.install("-e", ".", *TEST_DEPS)
    session.run(
        "pytest",
        "-p",
        "no:carto_proxy",
        "tests/test_routing.py",
        "tests/test_no_proxy.py",
        "tests/test_target.py",
        "tests/test_import.py",
        *session.posargs,
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """Run the "no password in any output" property at 10,000 examples per placement.

    The default suite runs a few examples of it; this runs the ``fuzz`` hypothesis profile
    (tests/conftest.py) and prints how many examples each property ran.
    """
    session.install("-e", ".[all]", *TEST_DEPS)
    run_loopback_only(
        session,
        "pytest",
        "tests/test_secrets.py",
        "--hypothesis-profile=fuzz",
        "--hypothesis-show-statistics",
        "--timeout=3600",  # 10,000 examples outlast the suite's per-test limit
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", "carto_proxy", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "carto_proxy", "tests", "bench", "noxfile.py")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy --strict over the package, with every optional library installed."""
    session.install("-e", ".[all]", "mypy>=1.13", "types-requests", "types-PyYAML", "pytest")
    session.run("mypy", "carto_proxy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site; any warning fails (the kit's pages import it: extra testing)."""
    session.install("-e", ".[testing]", "sphinx>=8", "myst-parser>=4", "furo")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Print the benchmarks' figures (routing decisions, HTTP transports through Squid)."""
    session.install("-e", ".[all]", *TEST_DEPS)
    session.run("python", "bench/route.py")
    session.run("python", "bench/transport.py")
