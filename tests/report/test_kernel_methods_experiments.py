"""The kernel-methods reproductions (quick mode), each run once per module."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import kernel_methods as km
from dltheory.report.figures import PNG_SIGNATURE

_RUNS = {
    "nngp_ntk_real_data": km.nngp_ntk_real_data,
    "ntk_equals_trained_nets": km.ntk_equals_trained_nets,
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_quick_reproduction_passes_with_a_figure(quick_outcome, name):
    result = quick_outcome(name)
    assert result.verdict is True, result.summary
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)


def test_real_data_table_covers_every_depth(quick_outcome):
    result = quick_outcome("nngp_ntk_real_data")
    rows = result.details["rows"]
    assert [r["depth"] for r in rows] == result.parameters["depths"]
    assert all(0.5 < r["nngp_acc"] <= 1.0 for r in rows)  # 10 classes: chance is 0.1


def test_trained_nets_have_error_bars(quick_outcome):
    result = quick_outcome("ntk_equals_trained_nets")
    assert all(s > 0 for s in result.details["stderr"])
    assert result.measurement.n == result.parameters["n_nets"]
