"""stub"""

from __future__ import annotations

import argparse

from carto_proxy._cli_common import Source

__all__ = ["register", "run"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add the command."""
    parser = commands.add_parser("demo", parents=[common])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, source: Source) -> int:
    """Run."""
    return 0
