"""cnn_kernels_digits and critical_deep_cnn (quick runs)."""

from __future__ import annotations

from dltheory.report.experiments.conv_kernels import cnn_kernels_digits, critical_deep_cnn
from dltheory.report.figures import PNG_SIGNATURE

from .conftest import reader_problems


def test_cnn_kernels_digits_quick_passes_with_a_figure():
    outcome = cnn_kernels_digits(quick=True, seed=0)
    assert outcome.verdict is True
    assert outcome.figure is not None and outcome.figure.startswith(PNG_SIGNATURE)
    assert reader_problems("cnn_kernels_digits", outcome) == []
    assert set(outcome.details["mean"]) == {"CNN-GP", "CNTK", "MLP NNGP", "RBF SVC"}
    assert all(0.5 < m <= 1.0 for m in outcome.details["mean"].values())


def test_critical_deep_cnn_quick_separates_the_phases():
    outcome = critical_deep_cnn(quick=True, seed=0)
    assert outcome.verdict is True
    assert reader_problems("critical_deep_cnn", outcome) == []
    depth = outcome.parameters["depth"]
    rows = outcome.details
    # Off criticality the kernel variance follows (C_w / 2)^depth within a factor 10.
    lo = rows["1.5"]["kernel_variance"]
    assert 0.75**depth / 10 < lo[-1] / lo[0] < 0.75**depth * 10
