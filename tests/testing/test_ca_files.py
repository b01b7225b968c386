"""ca_bundle: PEM text in, one temporary file out, removed however the block ends."""

from __future__ import annotations

import doctest
import os
import stat
from pathlib import Path

import pytest
import trustme

from carto_proxy.testing import _ca_files as ca_files_module
from carto_proxy.testing import ca_bundle


def test_the_pems_are_written_in_order_each_ending_with_a_newline() -> None:
    first, second = (trustme.CA().cert_pem.bytes().decode() for _ in range(2))
    with ca_bundle(first.rstrip("\n"), second + "\n\n") as path:
        assert Path(path).read_text() == first + second
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the owner's only


def test_the_file_is_removed_however_the_block_ends() -> None:
    pem = trustme.CA().cert_pem.bytes().decode()
    with pytest.raises(RuntimeError), ca_bundle(pem) as path:
        raise RuntimeError("the test failed")
    assert not Path(path).exists()
    with ca_bundle(pem) as removed_early:
        os.unlink(removed_early)  # already gone: leaving the block is still fine


def test_bad_arguments_say_what_to_give() -> None:
    with pytest.raises(TypeError, match=r"decode bytes first: pem.decode\('ascii'\)"):
        ca_bundle(b"-----BEGIN CERTIFICATE-----").__enter__()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one PEM"):
        ca_bundle().__enter__()


def test_docstring_example_runs() -> None:
    result = doctest.testmod(ca_files_module)
    assert result.attempted > 0
    assert result.failed == 0
