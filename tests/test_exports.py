"""Top-level exports load on first use; every name in __all__ resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dltheory


def test_every_exported_name_resolves():
    for name in dltheory.__all__:
        assert getattr(dltheory, name) is not None, name
    assert set(dltheory.__all__) <= set(dir(dltheory))


def test_import_dltheory_does_not_import_torch():
    probe = "import sys, dltheory; print('torch' in sys.modules, dltheory.__version__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()  # fmt: skip
    assert out == ["False", dltheory.__version__]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        dltheory.nope  # noqa: B018


def test_finite_reexports_the_corrections():
    from dltheory.finite import finite_width_corrections
    from dltheory.kernels import finite_width_corrections as original

    assert finite_width_corrections is original
    assert "finite_width_corrections" in dltheory.finite.__all__
