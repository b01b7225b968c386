"""The ``carto-proxy`` command: find proxy configuration mistakes before they cause outages.

A thin shell: it parses the command line and hands over to one module per command
(``_check``, ``_route``, ``_egress``, ``_env``, and the ``_probe`` and ``_demo`` packages),
each of which imports what only it needs when it runs, so that ``--help`` stays quick. Exit
status: 0 fine, 1 errors found or checks failed, 2 usage (including a target that cannot be
parsed).

    $ carto-proxy check --env-file .env
    $ carto-proxy route --env-file .env https://xy12345.snowflakecomputing.com
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from carto_proxy._version import __version__
from carto_proxy.cli import _audit, _check, _demo, _egress, _env, _probe, _route
from carto_proxy.cli._shared import (
    EXIT_FINDINGS,
    EXIT_USAGE,
    Source,
    UsageError,
    emit,
    environ_or_os,
)
from carto_proxy.exceptions import ConfigError, MissingExtraError, TargetError

__all__ = ["main"]

_COMMANDS = (_check, _route, _egress, _env, _probe, _demo, _audit)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``carto-proxy`` with *argv* (``sys.argv[1:]``) and return the exit status.

    Args:
        argv: the arguments, without the program name.
        environ: the environment the default source reads (``os.environ`` when ``None``).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse reported
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    source = Source(
        env_file=args.env_file, helm_values=args.helm_values, environ=environ_or_os(environ)
    )
    try:
        status: int = args.run(args, source)
    except (UsageError, TargetError, MissingExtraError) as error:
        _fail(args.command, str(error))
        return EXIT_USAGE
    except ConfigError as error:
        _fail(args.command, f"{error}\n(run 'carto-proxy check' to see every finding)")
        return EXIT_FINDINGS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`carto-proxy egress | head`): stop quietly, as the Python docs
        # advise, pointing stdout at devnull so the flush at exit cannot fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS
    return status


def _fail(command: str, message: str) -> None:
    emit(f"carto-proxy {command}: {message}", stream=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("configuration source (default: the process environment)")
    exclusive = where.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--env-file", metavar="FILE", help="read a CARTO .env file (docker-compose syntax)"
    )
    exclusive.add_argument(
        "--helm-values",
        metavar="FILE",
        help="read CARTO Helm values (externalProxy.*); needs PyYAML (extra 'helm')",
    )
    common.add_argument("--json", action="store_true", help="print JSON (stable; see docs)")
    parser = argparse.ArgumentParser(
        prog="carto-proxy",
        description="Check, explain and test a CARTO Self-hosted external proxy configuration. "
        "Exit status: 0 fine, 1 errors found or checks failed, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str,
        run: Callable[[argparse.Namespace, Source], int],
        *,
        help: str,
        description: str,
    ) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=[common], help=help, description=description)
        command.set_defaults(run=run)  # what main() calls
        return command

    for module in _COMMANDS:
        module.register(add)
    return parser
