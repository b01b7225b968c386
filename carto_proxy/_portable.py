"""``carto-proxy env --portable``: rewrite NO_PROXY so that every tool reads it alike.

Built on the portability table (:func:`carto_proxy._diagnostics.entry_rules`), the same rows
the lint reports: each entry some tool reads unlike carto_proxy is replaced by the rule's
:attr:`~carto_proxy._diagnostics.EntryRule.rewrite`, again until no rule with a rewrite applies
(``*.corp.example`` → ``corp.example``, ``.corp.example``; ``[::1]`` → ``::1``). Every rewrite
keeps carto_proxy's own decision for every target. Entries carto_proxy ignores are dropped
(other tools may still match something with them). What is left is what no spelling makes
portable: :attr:`Portable.not_portable`, the lint's findings on the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

from . import _env
from ._config import ProxyConfig, build
from ._diagnostics import Diagnostic, EntryRule, entry_rules, exclusion_lists, lint, tool_names
from ._no_proxy import NoProxy

__all__ = ["Portable", "Rewrite", "portable"]

_MAX_PASSES = 8  # each pass removes one rule from an entry; no entry meets more than four


class Rewrite(NamedTuple):
    """One entry as written, and the entries that replace it.

    Attributes:
        variable: ``NO_PROXY`` or ``NO_GRPC_PROXY``.
        entry: the entry as written (user information masked).
        now: the entries written in its place; ``()`` when it is dropped.
        codes: the lint codes it would have had (``CP201``: carto_proxy ignores it).
        tools: ids of the tools that read the original unlike carto_proxy.
        why: one sentence for people.
    """

    variable: str
    entry: str
    now: tuple[str, ...]
    codes: tuple[str, ...]
    tools: tuple[str, ...]
    why: str


class Portable(NamedTuple):
    """A configuration rewritten for portability, and what could not be.

    Attributes:
        config: the rewritten configuration (carto_proxy routes every target as before).
        rewrites: each entry that changed.
        not_portable: the lint's findings on the rewritten variables, as ``check`` reports
            them: no rewrite removes them.
    """

    config: ProxyConfig
    rewrites: tuple[Rewrite, ...]
    not_portable: tuple[Diagnostic, ...]


def portable(config: ProxyConfig) -> Portable:
    """Rewrite *config*'s NO_PROXY and NO_GRPC_PROXY as the portability table says.

    >>> result = portable(ProxyConfig(https_proxy="http://p:3128", no_proxy="*.corp.example"))
    >>> str(result.config.no_proxy)
    'corp.example,.corp.example'
    >>> result.not_portable
    ()
    """
    rewrites: list[Rewrite] = []
    lists: dict[str, NoProxy] = {}
    for name, no_proxy, readers in exclusion_lists(config):
        entries, changed = _rewrite_list(name, no_proxy, readers)
        if name == "NO_GRPC_PROXY" and not entries:
            continue  # blank would mean unset: gRPC would read NO_PROXY instead
        lists[name] = NoProxy.parse(entries)
        rewrites += changed
    rewritten = dataclasses.replace(
        config,
        no_proxy=lists.get("NO_PROXY", config.no_proxy),
        no_grpc_proxy=lists.get("NO_GRPC_PROXY", config.no_grpc_proxy),
    )
    # What check says of the variables written: the lint of them, read back.
    written = build(_env.read_environ(rewritten.to_env()), ca="defer")
    return Portable(rewritten, tuple(rewrites), tuple(lint(written)))


def _rewrite_list(
    variable: str, no_proxy: NoProxy, readers: tuple[str, ...]
) -> tuple[list[str], list[Rewrite]]:
    """The list's entries rewritten, and one :class:`Rewrite` per entry that changed."""
    ignored = {item.entry: item.reason for item in no_proxy.ignored}
    # Each entry remembers the entry as written it came from, and the rules applied to it.
    origin = {e.lower(): e for e in no_proxy.entries if e not in ignored}
    current = list(origin.values())
    applied: dict[str, list[EntryRule]] = {}
    star = _first_rewrite("*", frozenset(origin), readers) if "*" in origin else None
    if star is not None and star.rewrite is not None and "*" in star.rewrite:
        # '*' matches every target, but only alone do (nearly) all tools read it so.
        applied = {e: [star] for e in current if e != "*"}
        current = ["*"]
    for _ in range(_MAX_PASSES):
        listed = frozenset(e.lower() for e in current)
        following: dict[str, str] = {}  # entry (lowercased) -> as written first
        for entry in current:
            rule = _first_rewrite(entry, listed, readers)
            written = origin[entry.lower()]
            if rule is None or rule.rewrite is None:
                following.setdefault(entry.lower(), entry)
                continue
            applied.setdefault(written, []).append(rule)
            for new in rule.rewrite:
                origin.setdefault(new.lower(), written)
                following.setdefault(new.lower(), new)
        if list(following.values()) == current:
            break
        current = list(following.values())
    changed = {
        written: _summary(variable, written, rules, _now(written, rules, current, origin), readers)
        for written, rules in applied.items()
    }
    for entry, reason in ignored.items():
        why = f"carto_proxy ignores it: {reason}."
        changed[entry] = Rewrite(variable, entry, (), ("CP201",), (), why)
    position = {entry: index for index, entry in enumerate(no_proxy.entries)}
    return current, sorted(changed.values(), key=lambda r: position.get(r.entry, 0))


def _first_rewrite(entry: str, listed: frozenset[str], readers: Sequence[str]) -> EntryRule | None:
    """The first rule for *entry* that some reader reads unlike carto_proxy and that has a
    rewrite; ``None`` when there is none."""
    for rule in entry_rules(entry, listed):
        if rule.rewrite is not None and any(t in readers for t in rule.tools):
            return rule
    return None


def _now(
    written: str, rules: list[EntryRule], current: list[str], origin: dict[str, str]
) -> list[str]:
    """What replaced *written*: the entries it became, or those its last rewrite merged into
    (``example.com.`` into an ``example.com`` already listed, any entry into ``*``)."""
    mine = [e for e in current if origin[e.lower()] == written]
    if mine:
        return mine
    kept = {e.lower(): e for e in current}
    return [kept[e.lower()] for e in rules[-1].rewrite or () if e.lower() in kept]


def _summary(
    variable: str, entry: str, rules: list[EntryRule], now: list[str], readers: Sequence[str]
) -> Rewrite:
    """The :class:`Rewrite` of *entry*, naming only the tools that read *variable*."""
    tools = tuple(dict.fromkeys(t for rule in rules for t in rule.tools if t in readers))
    codes = tuple(dict.fromkeys(rule.code for rule in rules))
    first = tuple(t for t in rules[0].tools if t in readers)
    why = rules[0].message.format(tools=tool_names(first), entry=entry)
    return Rewrite(variable, entry, tuple(now), codes, tools, why)
