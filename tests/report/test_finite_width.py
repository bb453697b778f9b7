"""gaussian_outputs: kurtosis, slope fit, the reproduction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.finite import ensemble
from dltheory.kernels.corrections import relu_exact_excess_kurtosis
from dltheory.report.experiments import finite_width
from dltheory.report.experiments.finite_width import (
    excess_kurtosis,
    loglog_slope,
)

from .conftest import reader_problems


@pytest.mark.parametrize(
    ("name", "draw", "kappa"),
    [
        ("gaussian", lambda g, n: torch.randn(n, generator=g, dtype=torch.float64), 0.0),
        ("uniform", lambda g, n: 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1, -1.2),
        (
            "laplace",
            lambda g, n: (
                torch.randn(n, generator=g, dtype=torch.float64)
                * torch.empty(n, dtype=torch.float64).exponential_(generator=g).mul(2).sqrt()
            ),
            3.0,
        ),
    ],
)
def test_excess_kurtosis_of_known_laws(name, draw, kappa):
    # Gaussian 0, uniform -6/5, Laplace 3 (the Laplace law as a Gaussian scale mixture).
    estimate = excess_kurtosis(draw(torch.Generator().manual_seed(0), 200_000))
    assert abs(estimate.mean - kappa) <= 5 * estimate.stderr, name
    assert 0 < estimate.stderr < 0.1


def test_relu_exact_excess_kurtosis_against_monte_carlo():
    spec = MLP(2, "relu", c_w=2.0)
    x = torch.tensor([[0.4, -1.0, 0.3]], dtype=torch.float64)
    z = ensemble(spec, 6, 200_000, seed=0, in_dim=3, dtype=torch.float64).forward(x)[:, 0, 0]
    estimate = excess_kurtosis(z)
    exact = relu_exact_excess_kurtosis([6, 6])
    assert exact == pytest.approx(3 * ((11 / 6) ** 2 - 1))
    assert abs(estimate.mean - exact) <= 5 * estimate.stderr


def test_loglog_slope_matches_numpy_weighted_polyfit():
    widths = [8, 16, 32, 64]
    values = [2.1, 0.98, 0.52, 0.24]
    stderrs = [0.1, 0.06, 0.03, 0.02]
    fit = loglog_slope(widths, values, stderrs)
    sigma = np.array(stderrs) / np.array(values)
    coef, cov = np.polyfit(np.log(widths), np.log(values), 1, w=1 / sigma, cov="unscaled")
    assert fit.slope == pytest.approx(coef[0], rel=1e-10)
    assert fit.intercept == pytest.approx(coef[1], rel=1e-10)
    assert fit.stderr == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)


def test_gaussian_outputs_plumbing_at_a_tiny_size(monkeypatch):
    tiny = finite_width._Sizes(depth=2, widths=(4, 8), n_networks=2000)
    monkeypatch.setattr(finite_width, "_QUICK", tiny)
    outcome = finite_width.gaussian_outputs(quick=True, seed=1)
    assert outcome.prediction == -1.0
    assert outcome.measurement.n == 4000
    assert outcome.details["widths"] == [4, 8]
    assert outcome.details["excess_kurtosis_exact"] == [
        relu_exact_excess_kurtosis([4, 4]),
        relu_exact_excess_kurtosis([8, 8]),
    ]
    nngp = np.array(outcome.details["nngp"])
    x = np.array(outcome.parameters["inputs"])
    np.testing.assert_allclose(np.diag(nngp), 2 * (x**2).sum(1) / x.shape[1], rtol=1e-12)
    assert outcome.figure is not None


@pytest.mark.slow
def test_gaussian_outputs_quick_passes():
    outcome = finite_width.gaussian_outputs(quick=True, seed=0)
    assert reader_problems("gaussian_outputs", outcome) == []
    assert outcome.verdict is True
