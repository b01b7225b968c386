"""The documentation keeps up with the code: every diagnostic code has a section, and the
examples in the core's docstrings and in the user guide run as written.

Sphinx itself is not run here; the nox ``docs`` session builds the site with ``-W``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import carto_proxy

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "carto_proxy"
DOCS = ROOT / "docs"

CODE = re.compile(r"\bCP\d{3}\b")
# A section for a code is a heading that names it or a MyST target "(cp101)=" before one.
SECTION = re.compile(
    r"^(?:#{1,6}[ \t].*?\b(CP\d{3})\b|\((cp\d{3})\)=)", re.MULTILINE | re.IGNORECASE
)

# Pages of the user guide whose ">>>" examples are run as doctests.
GUIDE_PAGES = ("variables.md", "no-proxy.md", "routing.md", "tls.md")


def codes_in_source() -> set[str]:
    return {
        code
        for path in PACKAGE.rglob("*.py")
        for code in CODE.findall(path.read_text(encoding="utf-8"))
    }


def documented_codes(*pages: str) -> set[str]:
    found: set[str] = set()
    for page in pages:
        path = DOCS / page
        if path.exists():
            text = path.read_text(encoding="utf-8")
            found |= {(a or b).upper() for a, b in SECTION.findall(text)}
    return found


def test_every_code_in_the_source_has_a_section() -> None:
    in_source = codes_in_source()
    assert {"CP101", "CP201", "CP305", "CP400"} <= in_source  # the scan itself works
    missing = in_source - documented_codes("diagnostics.md", "cli.md")
    assert not missing, f"document these codes in docs/diagnostics.md or docs/cli.md: {missing}"


def test_every_documented_core_code_exists() -> None:
    documented = documented_codes("diagnostics.md")
    assert len(documented) >= 20
    stale = documented - codes_in_source()
    assert not stale, f"docs/diagnostics.md documents codes the source never uses: {stale}"


def test_the_code_table_holds_every_code_and_each_is_documented_on_its_page() -> None:
    from carto_proxy._codes import CODES

    used = {
        code
        for path in PACKAGE.rglob("*.py")
        if path.name != "_codes.py"
        for code in CODE.findall(path.read_text(encoding="utf-8"))
    }
    assert used - set(CODES) == set(), "add these codes to carto_proxy/_codes.py"
    for code, info in CODES.items():
        assert code in documented_codes(f"{info.page}.md"), f"{code}: no section in {info.page}.md"
        assert info.anchor(code) == f"{info.page}.html#{code.lower()}"


def test_section_pattern_needs_a_heading_or_target() -> None:
    text = "(cp101)=\n### CP101 — x\n\nMentions CP999 in passing.\n## Not a code\n#### CP102\n"
    found = {(a or b).upper() for a, b in SECTION.findall(text)}
    assert found == {"CP101", "CP102"}


def core_modules() -> list[str]:
    names = ["carto_proxy", "carto_proxy.adapters._common"]
    for info in pkgutil.iter_modules(carto_proxy.__path__):
        if not info.ispkg and info.name != "__main__":  # importing __main__ runs the CLI
            names.append(f"carto_proxy.{info.name}")
    return sorted(names)


@pytest.mark.parametrize("name", core_modules())
def test_core_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_main_entry_point_has_a_doctest() -> None:
    from carto_proxy import _config

    tests = doctest.DocTestFinder().find(_config.ProxyConfig, "ProxyConfig")
    assert sum(len(test.examples) for test in tests) >= 2


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_guide_examples_run(page: str) -> None:
    path = DOCS / page
    text = path.read_text(encoding="utf-8")
    assert ">>>" in text
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=doctest.ELLIPSIS, encoding="utf-8"
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) in docs/{page} failed"
