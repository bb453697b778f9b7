"""Depth profiles: analytic (kernel recursion) against sampled finite networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory.criticality.depth_scales import depth_scales
from dltheory.criticality.profiles import depth_profile, measured_depth_profile

X = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)  # correlation 0.6


def _decay_length(gap: np.ndarray, layers: np.ndarray) -> float:
    """-1 / slope of log(gap) against the layer index."""
    return -1.0 / np.polyfit(layers, np.log(gap), 1)[0]


def test_analytic_profile_first_layer_closed_form() -> None:
    # K^(1)_ab = C_b + C_w x_a . x_b / n_0.
    p = depth_profile("tanh", 1.5, 0.1, X, 3)
    assert p.variance.shape == (4, 2)
    assert p.variance[0].tolist() == pytest.approx([0.1 + 1.5 / 2] * 2, rel=1e-14)
    assert float(p.correlation[0]) == pytest.approx((0.1 + 1.5 * 0.3) / 0.85, rel=1e-14)


@pytest.mark.parametrize(("name", "c_w", "c_b"), [("tanh", 1.5, 0.1), ("relu", 2.0, 0.0)])
def test_measured_variance_matches_analytic(name: str, c_w: float, c_b: float) -> None:
    width = 512
    analytic = depth_profile(name, c_w, c_b, X, 20)
    measured = measured_depth_profile(name, c_w, c_b, X, 20, width=width, n_networks=12, seed=0)
    assert measured.variance.shape == analytic.variance.shape == (21, 2)
    tolerance = 5 * measured.variance_se + 2 / width * analytic.variance
    assert bool(((measured.variance - analytic.variance).abs() <= tolerance).all())


def test_ordered_correlation_converges_with_xi_c() -> None:
    # Ordered tanh: 1 - rho^(l) ~ exp(-l / xi_c), xi_c = -1 / log chi_perp(K*).
    d = depth_scales("tanh", 0.8, 0.05)
    assert d.phase == "ordered"
    p = depth_profile("tanh", 0.8, 0.05, X, 32)
    gap = (1.0 - p.correlation).numpy()
    layers = np.arange(8, 20)  # past the nonlinear transient
    # The correlation map is linear in 1 - rho up to O((1 - rho)^2): relative corrections to
    # the gap of order gap[8], which bound the error of the fitted decay length.
    assert _decay_length(gap[layers], layers) == pytest.approx(d.xi_c, rel=gap[8])
    # Finite networks follow that profile: 5 standard errors (over 8 networks) plus the
    # O(l / n) finite-width shift of the correlation near rho* = 1 (as in
    # compare_correlation_profile).
    m = measured_depth_profile("tanh", 0.8, 0.05, X, 32, width=512, n_networks=8, seed=1)
    l = torch.arange(1, 34, dtype=torch.float64)
    margin = 5 * m.correlation_se + (l / 512) * (1.0 - p.correlation)
    assert bool(((m.correlation - p.correlation).abs() <= margin).all())


def test_chaotic_analytic_profile_converges_with_xi_c() -> None:
    # Chaotic odd tanh, C_b = 0: rho* = 0 and |rho^(l)| ~ exp(-l / xi_c) asymptotically.
    d = depth_scales("tanh", 4.0, 0.0)
    assert d.phase == "chaotic" and d.rho_star == 0.0
    p = depth_profile("tanh", 4.0, 0.0, X, 60)
    layers = np.arange(40, 61)
    gap = p.correlation.abs().numpy()[layers]
    assert _decay_length(gap, layers) == pytest.approx(d.xi_c, rel=0.01)


def test_critical_variance_decays_as_power_law() -> None:
    # Tanh at C_w = 1, C_b = 0 (K* = 0 class): K^(l) = 1 / (2 l) (1 + O(log l / l))
    # (Roberts, Yaida & Hanin 2022, Sec. 5.3.3), not an exponential.
    p = depth_profile("tanh", 1.0, 0.0, X, 50)
    k = p.variance[:, 0].numpy()
    layers = np.arange(1, 52)
    assert k[-1] * 51 * 2 == pytest.approx(1.0, rel=math.log(51) / 51)
    # An exponential has a constant rate -d log K / dl; a power law's falls like 1 / l, so
    # the rate over layers 10-20 is about log(2) / log(50 / 40) = 3.1 times that over 40-50.
    early = -np.polyfit(layers[9:20], np.log(k[9:20]), 1)[0]
    late = -np.polyfit(layers[39:50], np.log(k[39:50]), 1)[0]
    assert early / late > 2.5
    # Finite networks follow the recursion: 5 standard errors (over 6 networks) plus the
    # O(l / n) relative finite-width correction, which grows with depth at criticality.
    m = measured_depth_profile("tanh", 1.0, 0.0, X, 50, width=512, n_networks=6, seed=2)
    l = torch.arange(1, 52, dtype=torch.float64)[:, None]
    margin = 5 * m.variance_se + (l / 512) * p.variance
    assert bool(((m.variance - p.variance).abs() <= margin).all())


def test_inputs_must_be_a_pair() -> None:
    with pytest.raises(ValueError, match=r"^x must be of shape \(2, in_dim\)"):
        depth_profile("relu", 2.0, 0.0, torch.ones(3, 2), 2)


def test_one_network_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^n_networks must be an integer >= 2"):
        measured_depth_profile("relu", 2.0, 0.0, X, 2, width=8, n_networks=1)
