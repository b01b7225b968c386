"""No password ever leaves carto_proxy: a property over generated passwords (issue 15).

Passwords holding ``/ ? # @ : %`` and friends are put wherever a user can write one: the proxy
variables (either case, winning or losing), routing targets, NO_PROXY entries, Helm values of
any type, and the CLI's arguments; then every output is searched for them: errors, ``repr``,
``check()`` and the lint, ``to_env()``, routes, log records, and what ``carto-proxy check``,
``env`` and ``route`` print (run in-process through ``carto_proxy.cli.main``).

The default suite runs a few examples of each (the ``suite`` profile of tests/conftest.py);
``nox -s fuzz`` runs them with the ``fuzz`` profile, 10,000 examples each.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from carto_proxy import CartoProxyError, ProxyConfig, check
from carto_proxy._diagnostics import lint
from carto_proxy._env import format_dotenv
from carto_proxy.cli import main

# A password is recognisable pieces ("Q7" and 3-6 letters or digits, which nothing else prints)
# joined by the characters that break naive URL parsing. Every piece is searched for, so half a
# password is a leak too (B6: "the port 'S3cret' is invalid").
DELIMITERS = "/?#@:%&=+$!*~'()[];\\ ,"
piece = st.from_regex(r"Q7[A-Za-z0-9]{3,6}", fullmatch=True)


def passwords(delimiters: str = DELIMITERS) -> st.SearchStrategy[str]:
    joins = st.text(alphabet=delimiters, max_size=2)
    pairs = st.lists(st.tuples(piece, joins), min_size=1, max_size=3)
    return pairs.map(lambda items: "".join(p + j for p, j in items))


def pieces(password: str) -> list[str]:
    found = []
    for run in "".join(c if c.isalnum() else " " for c in password).split():
        found += ["Q7" + part for part in run.split("Q7") if part]
    return found


def assert_never_shown(password: str, outputs: list[str]) -> None:
    text = "\n".join(outputs).lower()  # a lowercased password is still a password
    for secret in [password, *pieces(password)]:
        assert secret.lower() not in text, f"{secret!r} leaked in:\n" + "\n".join(outputs)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    records: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(f"{record.getMessage()} {record.args}")  # type: ignore[method-assign]
    logger = logging.getLogger("carto_proxy")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def run_cli(*argv: str, environ: dict[str, str] | None = None) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(list(argv), environ={} if environ is None else environ)
    return out.getvalue() + err.getvalue()


def library_outputs(build: Callable[[], ProxyConfig], **source: Any) -> list[str]:
    """What the library shows about one source: the config or its error, check() and lint."""
    outputs: list[str] = []
    try:
        config = build()
    except CartoProxyError as error:
        outputs += [str(error), repr(error), *(str(v) for v in vars(error).values())]
    else:
        outputs += [repr(config), str(config), str(config.to_env()), repr(config.sources)]
        outputs += [f"{d} {d!r}" for d in lint(config)]
        for target in ("https://auth.carto.com", "http://db.corp:8080", "grpc://a.b:443"):
            route = config.route(target)
            outputs += [str(route), repr(route), route.reason]
    outputs += [f"{d} {d!r}" for d in check(**source)]
    return outputs


# --- the proxy variables ------------------------------------------------------------------

PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "GRPC_PROXY"]
PROXY_TEMPLATES = [
    "http://alice:{}@proxy:3128",
    "https://alice:{}@[::1]:3129",
    "alice:{}@proxy",
    "socks5://alice:{}@proxy:1080",
    "http://alice:{}@proxy:3128/path",
    " http://alice:{}@proxy ",
]


@given(
    password=passwords(DELIMITERS.replace(",", "") + "\t"),
    template=st.sampled_from(PROXY_TEMPLATES),
    variable=st.sampled_from(PROXY_VARIABLES),
    others=st.dictionaries(st.sampled_from(PROXY_VARIABLES), st.just("http://ok:3128")),
)
def test_passwords_in_proxy_variables_are_never_shown(
    password: str, template: str, variable: str, others: dict[str, str], tmp_path_factory: Any
) -> None:
    environ = {**others, variable: template.format(password)}
    env_file = Path(tmp_path_factory.getbasetemp()) / "secret.env"
    env_file.write_text(format_dotenv(environ) + "\n", encoding="utf-8")
    with captured_logs() as logs:
        outputs = library_outputs(lambda: ProxyConfig.from_env(environ=environ), environ=environ)
        outputs += library_outputs(
            lambda: ProxyConfig.from_env_file(env_file, ca="defer"), env_file=env_file
        )
        outputs += [run_cli(command, environ=environ) for command in ("check", "env")]
        outputs.append(run_cli("route", "https://auth.carto.com", "--env-file", str(env_file)))
    assert_never_shown(password, outputs + logs)


# --- targets ------------------------------------------------------------------------------

TARGET_TEMPLATES = [
    "https://alice:{}@api.example.com/",
    "http://alice:{}@[::1]:8080/x",
    "alice:{}@db.internal:5432",
    "grpc://alice:{}@bigquerystorage.googleapis.com:443",
    "postgresql://alice:{}@db.internal/carto",
    "https://alice:{}@xy1.snowflakecomputing.com",
    "ftp://alice:{}@example.com",
]
CONFIG = ProxyConfig.from_env(
    environ={"https_proxy": "http://p:3128", "http_proxy": "http://p:3128", "no_proxy": ".internal"}
)


@given(
    password=passwords(),
    template=st.sampled_from(TARGET_TEMPLATES),
    protocol=st.sampled_from([None, "https", "grpc", "tcp", "bogus"]),
    warehouse=st.sampled_from([None, "snowflake", "postgresql", "nowhere"]),
)
def test_passwords_in_targets_are_never_shown(
    password: str, template: str, protocol: str | None, warehouse: str | None
) -> None:
    target = template.format(password)
    outputs: list[str] = []
    with captured_logs() as logs:
        try:
            route = CONFIG.route(target, protocol=protocol, warehouse=warehouse)
        except CartoProxyError as error:
            outputs += [str(error), repr(error), *(str(v) for v in vars(error).values())]
        else:
            outputs += [str(route), repr(route), route.reason, str(route.target)]
        argv = ["route", target]
        argv += ["--protocol", protocol] if protocol in {"https", "grpc", "tcp"} else []
        outputs.append(run_cli(*argv, environ={"https_proxy": "http://p:3128"}))
        outputs.append(run_cli(*argv, "--json", environ={"https_proxy": "http://p:3128"}))
    assert_never_shown(password, outputs + logs)


# --- NO_PROXY -------------------------------------------------------------------------------

ENTRY_TEMPLATES = [
    "alice:{}@db.corp",
    "http://alice:{}@db.corp",
    "alice:{}@db.corp:5432",
    "alice:{}@[::1]",
    "alice:{}@10.0.0.0/8",
]


@given(
    password=passwords(DELIMITERS.replace(",", "")),  # a comma separates entries
    template=st.sampled_from(ENTRY_TEMPLATES),
    variable=st.sampled_from(["no_proxy", "NO_PROXY", "no_grpc_proxy"]),
    other=st.sampled_from([None, "localhost", "x.corp,[zz]"]),
)
def test_passwords_in_no_proxy_entries_are_never_shown(
    password: str, template: str, variable: str, other: str | None
) -> None:
    environ = {"https_proxy": "http://p:3128", variable: f"localhost,{template.format(password)}"}
    if other is not None:
        environ[variable.swapcase()] = other
    with captured_logs() as logs:
        outputs = library_outputs(lambda: ProxyConfig.from_env(environ=environ), environ=environ)
        outputs += [run_cli(command, environ=environ) for command in ("check", "env")]
        outputs.append(run_cli("route", "https://db.corp", environ=environ))
    assert_never_shown(password, outputs + logs)


# --- Helm values of any type ----------------------------------------------------------------

HELM_FIELDS = [
    "connectionString",
    "type",
    "host",
    "port",
    "enabled",
    "excludedDomains",
    "sslRejectUnauthorized",
    "sslCA",
]


def shapes(url: str) -> st.SearchStrategy[Any]:
    """*url* as a value of any YAML type: text, in a list, in a mapping, nested."""
    return st.recursive(
        st.just(url),
        lambda inner: (
            st.lists(inner, min_size=1, max_size=2)
            | st.dictionaries(st.sampled_from(["url", "a"]), inner, min_size=1, max_size=1)
        ),
        max_leaves=3,
    )


@given(
    password=passwords(DELIMITERS.replace(",", "")),
    field=st.sampled_from(HELM_FIELDS),
    data=st.data(),
    raw=st.booleans(),
)
def test_passwords_in_helm_values_are_never_shown(
    password: str, field: str, data: st.DataObject, raw: bool, tmp_path_factory: Any
) -> None:
    url = f"http://alice:{password}@proxy:3128"
    proxy: dict[str, Any] = {"enabled": True, "type": "http", "host": "proxy", "port": 3128}
    if raw:
        # Written by hand, unquoted: the password may break the YAML itself. (Not with " #",
        # which starts a YAML comment: the value then ends before it, as YAML says.)
        assume(not re.search(r"\s#", url))
        lines = [f"  {k}: {v}" for k, v in proxy.items() if k != field]
        text = "externalProxy:\n" + "\n".join(lines) + f"\n  {field}: {url}\n"
    else:
        proxy[field] = data.draw(shapes(url))
        text = yaml.safe_dump({"externalProxy": proxy})
    values = Path(tmp_path_factory.getbasetemp()) / "secret-values.yaml"
    values.write_text(text, encoding="utf-8")
    with captured_logs() as logs:
        outputs = library_outputs(lambda: ProxyConfig.from_helm_values(values), helm_values=values)
        outputs += [run_cli(c, "--helm-values", str(values)) for c in ("check", "env")]
        outputs.append(run_cli("route", "https://auth.carto.com", "--helm-values", str(values)))
    assert_never_shown(password, outputs + logs)


# --- the property's own checks --------------------------------------------------------------


def test_pieces_are_what_is_searched_for() -> None:
    assert pieces("Q7abc/Q7de1@?Q7xyZ") == ["Q7abc", "Q7de1", "Q7xyZ"]
    assert pieces("Q7abcQ7def") == ["Q7abc", "Q7def"]
    with pytest.raises(AssertionError, match="'Q7abc' leaked"):
        assert_never_shown("Q7abc/Q7def", ["the port 'q7abc' is not a number"])
