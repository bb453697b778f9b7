"""SLQ density: moments of known spectra within the stated standard errors."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import spectral_density

from .test_trace import _quadratic


def test_moments_within_stated_error():
    lam = torch.cat([torch.tensor([40.0, 25.0, 12.0]), torch.linspace(-0.5, 1.5, 397)]).double()
    A = _quadratic(400, lam, seed=2)
    d = spectral_density(lambda v: A @ v, 400, n_probes=10, n_steps=20, seed=4)
    assert d.n_matvecs == 200
    for p in (1, 2, 3):  # Gauss quadrature with 20 nodes is exact per probe up to p = 39
        est, se = d.moment(p)
        exact = float((lam**p).mean())
        assert abs(est - exact) < 5 * se
    assert d.moment(0)[0] == pytest.approx(1.0, abs=1e-12)


def test_density_integrates_to_one_and_has_outlier_mass():
    lam = torch.cat([torch.tensor([10.0]), torch.zeros(99)]).double()
    A = _quadratic(100, lam, seed=5)
    d = spectral_density(lambda v: A @ v, 100, n_probes=6, n_steps=10, sigma=0.1)
    mass = torch.trapezoid(d.density, d.grid)
    assert float(mass) == pytest.approx(1.0, abs=1e-6)
    near_outlier = (d.grid > 9) & (d.grid < 11)
    # Each probe puts (v . u)^2 on the outlier; its mean is 1/100 (5 s.e. from weights).
    m = float(torch.trapezoid(d.density * near_outlier, d.grid))
    w = d.weights[:, :][d.nodes > 9]
    assert abs(m - 0.01) < 5 * float(w.std() / len(w) ** 0.5) + 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="n_probes must be an integer >= 1"):
        spectral_density(lambda v: v, 5, n_probes=0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        spectral_density(lambda v: v, 5, sigma=-1.0)
    with pytest.raises(ValueError, match="grid must be a 1-D array"):
        spectral_density(lambda v: v, 5, grid=torch.zeros(2, 2))


def test_deflation_is_unbiased_and_cuts_the_error():
    lam = torch.cat([torch.tensor([40.0, 25.0, 12.0]), torch.linspace(-0.5, 1.5, 397)]).double()
    A = _quadratic(400, lam, seed=2)
    plain = spectral_density(lambda v: A @ v, 400, n_probes=10, n_steps=20, seed=4)
    defl = spectral_density(lambda v: A @ v, 400, n_probes=10, n_steps=20, deflate=3, seed=4)
    assert defl.nodes[0, -3:].tolist() == pytest.approx([40.0, 25.0, 12.0], rel=1e-8)
    for p in (1, 2):
        est, se = defl.moment(p)
        exact = float((lam**p).mean())
        assert abs(est - exact) < 5 * se
        assert se < plain.moment(p)[1] / 5  # the outliers no longer carry the variance
