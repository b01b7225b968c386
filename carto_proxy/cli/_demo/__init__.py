"""``carto-proxy demo``: the library at work, on loopback only.

Starts the testing kit's :class:`~carto_proxy.testing.RecordingProxy` (plain for an
``http://`` proxy, TLS with its own CA, verified, for an ``https://`` one) and local stand-ins
for CARTO's external services (the kit's :class:`~carto_proxy.testing.LocalOrigin` and
:class:`~carto_proxy.testing.GrpcOrigin`); loads CARTO's two example ``.env`` files (or
``--env-file`` / ``--helm-values``), points their proxy variables at the recording proxy and
their CA at the demo's; sends requests through every adapter whose library is installed; and
prints which went through the proxy and which went direct, and why, next to the proxy's own
log.

No DNS lookup and no connection leaves the machine: proxied names are mapped by the proxy's
``upstreams``, direct ones by a :class:`~carto_proxy.testing.DirectGuard` that refuses every
other name (gRPC and Snowflake's 5.x driver, which resolve names outside Python, are dialled by
address), and the process's own proxy variables are set aside with
:func:`~carto_proxy.testing.proxy_environ` while the demo runs.

The jobs are split: :mod:`._requests` (what is sent, with which adapter), :mod:`._standins`
(the servers), :mod:`._scenarios` (pointing each scenario at the demo, judging each outcome)
and :mod:`._report` (the output). All of them are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import time

from carto_proxy.cli._shared import EXIT_FINDINGS, EXIT_OK, AddCommand, Source, emit_json

__all__ = ["register", "run"]


def register(add: AddCommand) -> None:
    """Add the ``demo`` command."""
    add(
        "demo",
        run,
        help="run requests through every installed adapter against a local recording proxy",
        description="Load CARTO's example .env files (or --env-file/--helm-values), point them "
        "at a local recording proxy and local stand-ins for CARTO's services, send requests "
        "through every installed adapter, and show which went through the proxy and which "
        "went direct, and why. Loopback only: no DNS, no network. Needs the 'testing' extra "
        "(trustme).",
    )


def run(args: argparse.Namespace, source: Source) -> int:
    """Run ``demo``; return the exit status."""
    # What only this command needs, the testing kit included: nothing of it loads for --help.
    import contextlib
    import os
    from unittest import mock

    from carto_proxy.cli._demo import _report, _requests, _scenarios, _standins
    from carto_proxy.testing import proxy_environ

    started = time.monotonic()
    scenarios = _scenarios.read_scenarios(source)
    adapters, skipped = _requests.load_adapters()
    results = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(proxy_environ(None))  # the process's own proxy settings set aside
        # Snowflake's drivers probe 169.254.169.254 and metadata.google.internal at login.
        stack.enter_context(
            mock.patch.dict(os.environ, {"SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true"})
        )
        http = stack.enter_context(_standins.http_stand_in(bigquery_project="carto-demo"))
        untrusted = stack.enter_context(_standins.untrusted_stand_in())  # its CA: never trusted
        ca_pem = http.ca_pem
        grpc = None
        if "grpc" in adapters:
            grpc = stack.enter_context(_standins.grpc_stand_in(_requests.STORAGE_API))
            ca_pem += grpc.ca_pem

        def answered() -> int:
            return len(http.requests) + (len(grpc.calls) if grpc is not None else 0)

        servers = _requests.Servers(
            http=http.address,
            untrusted=untrusted.address,
            grpc=None if grpc is None else (grpc.host, grpc.tls_port),
            answered=answered,
        )
        names = dict.fromkeys(_requests.HTTP_NAMES, http.address)
        names[_requests.UNTRUSTED] = untrusted.address
        guard = stack.enter_context(_standins.loopback_names(names))
        for settings in scenarios:
            scenario = _scenarios.run_scenario(
                settings,
                ca_pem=ca_pem,
                servers=servers,
                adapters=adapters,
                guard=guard,
            )
            results.append(scenario)
    ok = _scenarios.all_as_expected(results)
    elapsed = time.monotonic() - started
    if args.json:
        emit_json(_report.as_json(results, skipped, ok, elapsed))
    else:
        _report.print_report(results, skipped, ok, elapsed)
    return EXIT_OK if ok else EXIT_FINDINGS
