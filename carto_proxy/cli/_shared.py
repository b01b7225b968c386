"""What every ``carto-proxy`` command shares: the source it reads, exit codes, output.

Output goes through :func:`emit`, which scrubs anything shaped like a URL password, so no
command can print a secret even by quoting a value the core did not redact.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import shutil
import stat
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from carto_proxy import _env, _helm
from carto_proxy._config import CALoading, ProxyConfig, build
from carto_proxy._proxy_url import redact
from carto_proxy._proxy_url import scrub as scrub_text
from carto_proxy._routing import Route
from carto_proxy.exceptions import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from carto_proxy._egress import EgressData, EgressList

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_USAGE",
    "AddCommand",
    "Source",
    "UsageError",
    "add_egress_list_option",
    "bounded",
    "chosen_egress_lists",
    "emit",
    "emit_json",
    "readable_file",
    "route_json",
    "scrub",
    "table",
    "wrap",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

_TRUST_VARIABLES = frozenset(
    {"NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "trustedCACerts.value"}
)


class UsageError(Exception):
    """The command line cannot be acted on: exit status 2, with this message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a command reads the configuration: a ``.env`` file, Helm values or *environ*."""

    env_file: str | None
    helm_values: str | None
    environ: Mapping[str, str]

    @property
    def given(self) -> bool:
        """Whether ``--env-file`` or ``--helm-values`` was given."""
        return self.env_file is not None or self.helm_values is not None

    def read(self) -> _env.Sources:
        """Read the raw variables.

        Raises:
            UsageError: the file does not exist, or the ``helm`` extra is missing.
            ConfigError: the file exists but holds values that cannot be read.
        """
        path = self.env_file or self.helm_values
        if path is not None:
            readable_file("--env-file" if self.env_file is not None else "--helm-values", path)
        try:
            if self.env_file is not None:
                return _env.read_env_file(self.env_file)
            if self.helm_values is not None:
                return _helm.read_helm_values(self.helm_values)
        except MissingExtraError as error:
            raise UsageError(str(error)) from None
        return _env.read_environ(self.environ)

    def config(self, *, ca: CALoading = "load") -> ProxyConfig:
        """Read and build the configuration; the first refused value raises ``ConfigError``.

        *ca* is as for :meth:`ProxyConfig.from_env`: ``"defer"`` keeps the path of a CA file
        that may exist only where CARTO runs.
        """
        return build(self.read(), ca=ca)

    def routing_config(self) -> ProxyConfig:
        """Read the configuration for routing only: trust settings may be unusable here.

        The CA file is not read (``ca="defer"``: it may exist only where CARTO runs), and a
        refused trust setting (``NODE_TLS_REJECT_UNAUTHORIZED``, an inline CA) is noted on
        standard error and left out, since no route depends on it.

        Raises:
            ConfigError: a value routing depends on (a proxy variable) is refused.
        """
        errors: list[ConfigError] = []
        config = build(self.read(), errors, ca="defer")
        for error in errors:
            if error.variable not in _TRUST_VARIABLES:
                raise error
            shown = "" if error.value is None else f" {error.value!r}"
            emit(
                f"note: {error.variable}{shown} {error.problem}; routing does not need it",
                stream=sys.stderr,
            )
        return config


class AddCommand(Protocol):
    """Add a ``carto-proxy`` command, with the options every command shares.

    ``main`` calls *run* with the parsed arguments and the configuration source, and exits
    with what it returns. Each command module's ``register`` receives one of these.
    """

    def __call__(
        self,
        name: str,
        run: Callable[[argparse.Namespace, Source], int],
        *,
        help: str,
        description: str,
    ) -> argparse.ArgumentParser: ...


def readable_file(option: str, path: str, *, missing_ok: bool = False) -> bool:
    """Whether *path*, given with *option*, is a regular file this process can read.

    Returns ``False`` only with *missing_ok*, for a path that does not exist here (a CA file
    that lives where CARTO runs).

    Raises:
        UsageError: anything else that stops the file from being read: no such file, a
            directory or a device, a name too long, a NUL byte, no permission.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            problem = "is a directory" if os.path.isdir(path) else "is not a regular file"
            raise UsageError(f"{option} {_shown_path(path)}: {problem}")
        with open(path, "rb"):  # permission, and what stat cannot tell
            return True
    except FileNotFoundError:
        if missing_ok:
            return False
        raise UsageError(f"{option} {_shown_path(path)}: no such file") from None
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno == errno.ENAMETOOLONG:
            reason = f"{reason} ({len(os.fsencode(path))} bytes)"
        raise UsageError(f"{option} {_shown_path(path)}: cannot be read: {reason}") from None
    except ValueError:  # a NUL byte: no system call takes it
        raise UsageError(f"{option} {_shown_path(path)}: a path cannot hold a NUL byte") from None


def _shown_path(path: str) -> str:
    """*path* quoted for a message, its middle cut out when it is long."""
    shown = path if len(path) <= 80 else f"{path[:48]}...{path[-24:]}"
    return repr(shown)


def bounded(
    kind: type[float] | type[int], low: float, high: float, *, unit: str = ""
) -> Callable[[str], Any]:
    """An argparse ``type=``: a finite *kind* with ``low < value <= high`` (``int``: ``>=``).

    Anything else (``nan``, ``inf``, ``1e309``, a number out of range, not a number) is a
    usage error that says the range, as argparse reports it: exit status 2.
    """
    if kind is int:
        allowed = f"an integer from {low:g} to {high:g}"
    else:
        allowed = f"a number of {unit or 'units'} with {low:g} < value <= {high:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:  # not a number, or an int of more digits than Python converts
            value = math.nan
        above_low = value >= low if kind is int else value > low
        # NaN and infinities fail the comparisons; an int too big for a float never reaches
        # isfinite(), which would raise OverflowError on it.
        if not (above_low and value <= high and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text[:40]!r}")
        return value

    return parse


def add_egress_list_option(parser: argparse.ArgumentParser, *, help: str) -> None:
    """Add ``--list``: which of CARTO's egress lists, ``current``, ``legacy`` or ``all``."""
    parser.add_argument(
        "--list", dest="lists", choices=("current", "legacy", "all"), default="all", help=help
    )


def chosen_egress_lists(data: EgressData, args: argparse.Namespace) -> tuple[EgressList, ...]:
    """The lists of *data* that ``--list`` chose."""
    return data.select(None if args.lists == "all" else [args.lists])


def scrub(text: str) -> str:
    """Mask the password of anything URL-like in *text*, as :func:`_proxy_url.scrub` does."""
    return scrub_text(text)


def emit(text: str = "", *, stream: TextIO | None = None) -> None:
    """Print *text* (secrets scrubbed) to *stream*, standard output by default."""
    print(scrub(text), file=stream or sys.stdout)


def emit_json(value: Any) -> None:
    """Print *value* as indented JSON (secrets scrubbed)."""
    emit(json.dumps(value, indent=2, ensure_ascii=False))


def width() -> int:
    """The terminal width, 100 columns when it cannot be told."""
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def wrap(text: str, indent: str) -> list[str]:
    """Wrap *text* to the terminal width, every line starting with *indent*."""
    return textwrap.wrap(text, width=width(), initial_indent=indent, subsequent_indent=indent) or [
        indent
    ]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Lay out *rows* under *headers* in aligned columns (the last one is not padded)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        lines.append((indent + "  ".join([*cells, row[-1]])).rstrip())
    return lines


def route_json(route: Route, *, given: str | None = None) -> dict[str, Any]:
    """A :class:`Route` as the stable JSON object ``route --json`` documents.

    With *given* (the target as the user wrote it) the object starts with ``input``: that
    text with any user information masked.
    """
    target = route.target
    shown = {} if given is None else {"input": redact(given, keep_user=False)}
    return shown | {
        "action": route.action.value,
        "proxy": None if route.proxy is None else str(route.proxy),
        "rule": route.rule.value,
        "reason": route.reason,
        "target": {"protocol": target.protocol.value, "host": target.host, "port": target.port},
        "warehouse": None if route.warehouse is None else route.warehouse.value,
        "matched_entry": route.matched_entry,
        "needs_direct_egress": route.needs_direct_egress,
        "variable": route.variable,
    }


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal (progress lines and colours are for people)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def environ_or_os(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """*environ*, or ``os.environ`` when it is ``None``."""
    return os.environ if environ is None else environ
