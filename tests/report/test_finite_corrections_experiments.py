"""fourth_cumulant_1n: the 1/n fit and the reproduction's plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from dltheory.report.experiments import finite_corrections
from dltheory.report.experiments.finite_corrections import fit_one_over_n

from .conftest import reader_problems


def test_fit_matches_numpy_weighted_least_squares():
    widths = [16, 32, 64, 128]
    values = [2.3, 1.1, 0.61, 0.29]
    stderrs = [0.1, 0.05, 0.04, 0.02]
    fit = fit_one_over_n(widths, values, stderrs)
    n = np.array(widths, dtype=float)
    w = 1 / np.array(stderrs)
    design = np.stack([1 / n, 1 / n**2], axis=1) * w[:, None]
    coef, *_ = np.linalg.lstsq(design, np.array(values) * w, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    assert fit.a == pytest.approx(coef[0], rel=1e-10)
    assert fit.b == pytest.approx(coef[1], rel=1e-10)
    assert fit.a_stderr == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-10)


def test_reproduction_at_a_tiny_size(monkeypatch):
    tiny = finite_corrections._Sizes(depth=3, widths=(8, 16, 32), samples=1 << 14, work=1 << 18)
    monkeypatch.setattr(finite_corrections, "_QUICK", tiny)
    outcome = finite_corrections.fourth_cumulant_1n(quick=True, seed=2)
    assert reader_problems("fourth_cumulant_1n", outcome) == []
    assert outcome.details["widths"] == [8, 16, 32]
    assert outcome.details["n_networks"] == [4096, 1024, 512]
    # GELU at C_w = 1.5, C_b = 0.1, layer 3: the predicted coefficients are positive.
    assert outcome.prediction > 10  # the 1/n coefficient of the excess kurtosis
    assert abs(outcome.details["kurtosis_zscore"]) < 5
    assert outcome.figure is not None


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="widths must be at least 2"):
        fit_one_over_n([16], [0.1], [0.01])
    with pytest.raises(ValueError, match="stderrs must be > 0"):
        fit_one_over_n([16, 32], [0.1, 0.05], [0.01, 0.0])
