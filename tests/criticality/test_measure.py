"""Measured correlation depth scale xi_c: the fit and a real ensemble."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory.criticality.measure import fit_correlation_scale, measured_correlation_scale


def _synthetic(xi: float, rho_star: float, noise: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    layers = torch.arange(1, 41, dtype=torch.float64)
    clean = rho_star + 0.8 * torch.exp(-layers / xi)
    return clean + noise * torch.randn(32, 40, generator=g, dtype=torch.float64)


def test_fit_recovers_xi_with_a_known_asymptote() -> None:
    fit = fit_correlation_scale(_synthetic(6.0, 0.0, 0.01), start=1, rho_star=0.0)
    assert fit.xi_c.agrees(6.0, n_std=4.0)
    assert abs(float(fit.xi_c.mean) / 6.0 - 1) < 0.05
    first, last = fit.window
    assert first == 1 and last == fit.resolved_until
    # The window ends where the signal 0.8 exp(-l / 6) falls under 5 stderr (0.01 / sqrt(32)).
    expected_last = math.floor(-6.0 * math.log(5 * 0.01 / math.sqrt(32) / 0.8))
    assert abs(last - expected_last) <= 3


def test_fit_recovers_xi_and_a_free_asymptote() -> None:
    fit = fit_correlation_scale(_synthetic(5.0, 0.3, 0.01, seed=1), start=1, rho_star=None)
    assert fit.xi_c.agrees(5.0, n_std=4.0, rtol=0.02)
    assert fit.rho_star.agrees(0.3, n_std=4.0)
    assert float(fit.rho_star.stderr) > 0
    assert fit.window[1] == 40


def test_ordered_tanh_xi_c_agrees_within_its_stated_error() -> None:
    r = measured_correlation_scale("tanh", 1.0, 0.05, width=256, depth=30, n_networks=16)
    assert r.predicted.phase == "ordered"
    # The fit states a jackknife error over 8 groups of networks (1-3 % of xi_c here, seeds
    # 0-2 deviate by 0.05-0.6 of it); allow 5 of them plus the O(1/n) finite-width shift of
    # chi_perp (1/256 relative). The stated error must itself be small enough that a 10 %
    # error in xi_c cannot pass.
    xi = r.fit.xi_c
    assert float(xi.stderr) < 0.015 * r.predicted.xi_c
    assert xi.agrees(r.predicted.xi_c, n_std=5.0, rtol=1.0 / 256)
    assert r.fit.window[1] - r.fit.window[0] >= 5


def test_criticality_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^\(c_w, c_b\) must be an ordered or chaotic point"):
        measured_correlation_scale("relu", 2.0, 0.0, width=8, depth=3, n_networks=2)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"^asymptote must be one of"):
        measured_correlation_scale("tanh", 1.0, 0.05, asymptote="free")
    with pytest.raises(ValueError, match=r"^n_groups must be <= the number of networks"):
        fit_correlation_scale(torch.zeros(4, 10), start=1, rho_star=0.0, n_groups=8)
    with pytest.raises(ValueError, match=r"^samples must be resolved"):
        fit_correlation_scale(_synthetic(2.0, 0.0, 0.5), start=1, rho_star=0.0)
