"""Properties over arbitrary input (hypothesis)."""

from __future__ import annotations

import string
from collections.abc import Callable

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from carto_proxy import ConfigError, ProxyConfig, Route, TargetError, check
from carto_proxy._target import _parse_general, parse_target

VARIABLES = [
    "HTTP_PROXY",
    "https_proxy",
    "GRPC_PROXY",
    "no_proxy",
    "NO_GRPC_PROXY",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_EXTRA_CA_CERTS",
    "ALL_PROXY",
]
texts = st.text(max_size=80)
# A recognisable prefix keeps a generated password from being a word the output uses anyway.
secrets = st.text(
    alphabet=string.ascii_letters + string.digits + "!$%&*+~", min_size=4, max_size=20
).map(lambda text: f"Pw7{text}")
config = ProxyConfig.from_env(
    environ={
        "https_proxy": "http://p:3128",
        "http_proxy": "http://p:1",
        "no_proxy": ".internal,10.0.0.0/8,[::1]",
    }
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(VARIABLES), texts, max_size=5))
def test_any_text_gives_a_config_or_a_config_error(environ: dict[str, str]) -> None:
    try:
        result = ProxyConfig.from_env(environ=environ)
    except ConfigError:
        return
    assert isinstance(result, ProxyConfig)
    check(environ=environ)  # never raises for values


@settings(max_examples=500, deadline=None)
@given(texts, st.sampled_from([None, "http", "https", "grpc", "tcp"]))
def test_any_target_gives_a_route_or_a_target_error(target: str, protocol: str | None) -> None:
    try:
        route = config.route(target, protocol=protocol)
    except TargetError:
        return
    assert isinstance(route, Route)
    assert route.reason


@settings(max_examples=300, deadline=None)
@given(
    secrets,
    st.sampled_from(
        [
            "http://carto:{}@proxy:3128",
            "https://u:{}@[::1]:3129",
            "u:{}@proxy",
            "socks5://u:{}@proxy:1080",
            "http://u:{}@proxy:3128/path",
        ]
    ),
    st.sampled_from(["HTTP_PROXY", "https_proxy", "GRPC_PROXY"]),
)
def test_passwords_never_leak(password: str, template: str, variable: str) -> None:
    value = template.format(password)
    assume(password not in template.replace("{}", ""))
    environ = {variable: value}
    try:
        result = ProxyConfig.from_env(environ=environ)
        shown = [repr(result), str(result), str(result.to_env())]
    except ConfigError as error:
        shown = [str(error), repr(error), str(error.value)]
    shown += [str(d) for d in check(environ=environ)]
    shown += [repr(d) for d in check(environ=environ)]
    assert not any(password in text for text in shown)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=40), secrets)
def test_target_user_info_is_never_shown(host: str, password: str) -> None:
    target = f"https://user:{password}@{host}"
    assume(password not in host)
    try:
        route = config.route(target)
        shown = f"{route} {route.reason} {route.target} {route!r}"
    except TargetError as error:
        shown = f"{error} {error!r} {error.target}"
    assert password not in shown


hosts = st.from_regex(r"[a-z0-9_-]{1,12}(\.[a-z0-9_-]{1,12}){0,4}", fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["http", "https", "grpc", "postgres", "redshift", "wss", "ftp"]),
    hosts,
    st.one_of(st.none(), st.integers(min_value=0, max_value=70000)),
    st.sampled_from(["", "/", "/a/b?c=d", "#frag", "?q"]),
)
def test_fast_path_agrees_with_the_general_parser(
    scheme: str, host: str, port: int | None, path: str
) -> None:
    text = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"

    def outcome(parse: Callable[[], object]) -> object:
        try:
            return parse()
        except TargetError as error:
            return type(error)

    fast = outcome(lambda: parse_target(text))
    general = outcome(lambda: _parse_general(text, None))
    assert fast == general
