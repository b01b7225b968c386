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


# --- the README and the getting-started page run as written on CARTO's examples -------------

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CARTO_EXAMPLES = ("http-proxy.env", "https-proxy.env")


def python_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("example", CARTO_EXAMPLES)
@pytest.mark.parametrize(
    "page", [ROOT / "README.md", DOCS / "getting-started.md"], ids=["README", "getting-started"]
)
def test_user_guide_code_runs_as_written_on_carto_examples(
    page: Path,
    example: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every ``python`` block of *page*, in order, in one namespace, as a reader would run them.

    The working directory holds CARTO's example as ``.env`` (and its ``customizations.yaml``),
    exactly as shipped: the HTTPS one names a CA file this machine does not have. The blocks
    that send a request run "in the service": the example's variables in the environment, with
    the CA file present (the test origin's CA, standing in for the CA of a TLS-inspecting
    proxy, at a temporary path), ``my-proxy`` resolving to a local recording proxy and
    ``auth.carto.com`` reached through it on a local origin. Nothing leaves loopback.
    """
    from dotenv import dotenv_values

    from carto_proxy.testing import DirectGuard, LocalOrigin, RecordingProxy

    examples = ROOT / "examples"
    (tmp_path / ".env").write_bytes((examples / example).read_bytes())
    (tmp_path / "customizations.yaml").write_bytes((examples / "customizations.yaml").read_bytes())
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no python block"
    variables = {k: v for k, v in dotenv_values(examples / example).items() if v is not None}
    tls = variables["https_proxy"].startswith("https://")
    with (
        LocalOrigin() as origin,
        RecordingProxy(tls=tls, upstreams=origin.upstreams("auth.carto.com")) as proxy,
        DirectGuard({"my-proxy": ("127.0.0.1", proxy.port)}),
    ):
        for name, value in {**variables, "NODE_EXTRA_CA_CERTS": origin.ca_file}.items():
            monkeypatch.setenv(name, value)
        namespace: dict[str, object] = {"__name__": "__guide__"}
        for block in blocks:
            exec(compile(block, f"{page.name}:python block", "exec"), namespace)
    out = capsys.readouterr().out
    assert "direct" in out or "proxy" in out  # the blocks printed their routes
    sent = [r for r in proxy.tunnels if r.host == "auth.carto.com"]
    assert sent, "the client block's request did not go through the proxy"


def test_no_example_imports_a_private_module() -> None:
    private = re.compile(
        r"^\s*(?:>>> )?(?:from|import)\s+carto_proxy(?:\.\w+)*\._\w+", re.MULTILINE
    )
    pages = [ROOT / "README.md", *DOCS.rglob("*.md")]
    for page in pages:
        for block in [*python_blocks(page), page.read_text(encoding="utf-8")]:
            assert not private.search(block), f"{page.name} imports a private module"
    for name in core_modules():
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder().find(module, name):
            for example in test.examples:
                assert not private.search(example.source), f"a doctest in {test.name}"
