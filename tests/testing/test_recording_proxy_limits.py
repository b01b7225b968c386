"""RecordingProxy's bounded memory (issue 15): bodies streamed, records and TLS errors bounded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carto_proxy.testing._proxy_records import MAX_RECORDS, MAX_TLS_ERRORS, RecordBook
from carto_proxy.testing._recording_proxy import RecordingProxy
from tests.testing.proxy_client import ROOT, _run_child

SIZE = 50 * 1024 * 1024


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_fifty_megabyte_bodies_cost_a_few_megabytes() -> None:
    result = _run_child("tests.testing.memory_child")
    # Sized and chunked uploads reached the sink whole; sized and until-close downloads came back.
    assert result["answers"] == [[8, str(SIZE)], [8, str(SIZE)], [SIZE, "x" * 32], [SIZE, "x" * 32]]
    assert result["records"] == [[200, SIZE, 8], [200, SIZE, 8], [200, 0, SIZE], [200, 0, SIZE]]
    # Buffering any one body whole would cost 50 MB (the hand-written parser: +150 MB).
    assert result["growth_mb"] < 16, result


def _address(index: int) -> tuple[str, int]:
    return "127.0.0.1", index + 1


def test_the_book_forgets_the_oldest_finished_records_beyond_its_bound() -> None:
    book = RecordBook(max_records=3, max_tls_errors=2)
    live = book.open("CONNECT", _address(0), ("127.0.0.1", 1))  # stays open throughout
    for index in range(1, 6):
        with book.recording(book.open("GET", _address(index), ("127.0.0.1", 1))):
            pass
    assert [record.port for record in book.records()] == [1, 5, 6]
    assert book.wait_for(2, timeout=0) == book.records()
    for index in range(6, 9):  # three more still open: live records are never forgotten
        book.open("GET", _address(index), ("127.0.0.1", 1))
    assert [record.port for record in book.records()] == [1, 7, 8, 9]
    assert live.now.end is None
    for error in ("one", "two", "three"):
        book.add_tls_error(error)
    assert book.tls_errors() == ["two", "three"]
    book.clear()
    assert (book.records(), book.tls_errors(), book.count()) == ([], [], 0)


def test_waiting_for_more_than_the_bound_is_refused_at_once() -> None:
    book = RecordBook(max_records=3, max_tls_errors=2)
    with pytest.raises(ValueError, match="at most 3 records"):
        book.wait_for(4, timeout=60)
    with pytest.raises(ValueError, match="at most 2"):
        book.wait_for_tls_errors(3, timeout=60)


def test_the_proxy_documents_its_bounds() -> None:
    documented = " ".join(
        text
        for text in (
            RecordingProxy.records.__doc__,
            RecordingProxy.tls_errors.__doc__,
            RecordingProxy.wait_for.__doc__,
        )
        if text
    )
    assert f"{MAX_RECORDS:,}" in documented
    assert f"{MAX_TLS_ERRORS:,}" in documented
    assert f"{MAX_RECORDS:,}" in (ROOT / "docs" / "testing.md").read_text()
    with RecordingProxy() as proxy, pytest.raises(ValueError, match="clear"):
        proxy.wait_for(MAX_RECORDS + 1)


def test_without_h11_the_proxy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['h11'] = None\n"
        "from carto_proxy.exceptions import MissingExtraError\n"
        "try:\n"
        "    from carto_proxy.testing import RecordingProxy\n"
        "except MissingExtraError as error:\n"
        "    print(error)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert child.stdout.strip() == (
        "h11 is not installed; install it with: pip install 'carto-proxy[testing]'"
    ), child.stderr
