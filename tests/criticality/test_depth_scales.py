"""Depth scales against iterating the exact correlation map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import activation
from dltheory.criticality import chi_perp
from dltheory.criticality.depth_scales import correlation_map, depth_scales


def _iterate(name: str, c_w: float, c_b: float, rho0: float, n: int) -> np.ndarray:
    """rho^(l) from the exact map at the fixed-point variance (found by iteration)."""
    s = activation(name)
    q = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(500):  # the variance map converges geometrically
        q = c_b + c_w * s.nngp_map(q, q, q)
    rhos = [rho0]
    for _ in range(n):
        rho = torch.tensor(rhos[-1], dtype=torch.float64)
        rhos.append(float((c_b + c_w * s.nngp_map(q, rho * q, q)) / q))
    return np.array(rhos)


@pytest.mark.parametrize(
    ("c_w", "c_b", "phase"),
    [(0.8, 0.05, "ordered"), (1.5, 0.3, "ordered"), (2.5, 0.05, "chaotic"), (4.0, 0.5, "chaotic")],
)
def test_tanh_xi_c_matches_iterated_map(c_w: float, c_b: float, phase: str) -> None:
    d = depth_scales("tanh", c_w, c_b)
    assert d.phase == phase
    rhos = _iterate("tanh", c_w, c_b, 0.9 if phase == "ordered" else 0.95, 400)
    rho_star = 1.0 if phase == "ordered" else rhos[-1]
    gap = np.abs(rhos - rho_star)
    window = np.nonzero((gap < 1e-3) & (gap > 1e-10))[0]
    assert len(window) >= 5
    slope = np.polyfit(window, np.log(gap[window]), 1)[0]
    assert -1.0 / slope == pytest.approx(d.xi_c, rel=0.01)
    if phase == "chaotic":
        assert d.rho_star == pytest.approx(rho_star, abs=1e-8)


def test_ordered_xi_c_is_chi_perp_scale() -> None:
    d = depth_scales("tanh", 0.8, 0.05)
    assert d.chi_c == d.chi_perp < 1
    assert d.xi_c == pytest.approx(-1 / math.log(d.chi_perp), rel=1e-14)
    assert d.xi_q == pytest.approx(-1 / math.log(d.chi_parallel), rel=1e-14)


def test_relu_he_init_is_critical() -> None:
    d = depth_scales("relu", 2.0, 0.0)
    assert d.phase == "critical"
    assert d.xi_c == math.inf and d.xi_q == math.inf
    assert d.chi_perp == pytest.approx(1.0, abs=1e-12)


def test_tanh_origin_is_critical() -> None:
    d = depth_scales("tanh", 1.0, 0.0)
    assert (d.phase, d.k_star, d.xi_c) == ("critical", 0.0, math.inf)


def test_diverging_variances_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^\(c_w, c_b\) must be such that the variance map"):
        depth_scales("relu", 3.0, 0.1)


def test_negative_variance_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^c_w must be a variance >= 0"):
        depth_scales("tanh", -1.0, 0.0)


def test_correlation_map_needs_positive_variance() -> None:
    with pytest.raises(ValueError, match=r"^k_star must be > 0"):
        correlation_map("tanh", 1.0, 0.0, 0.0, 0.5)


def test_tanh_small_k_star_just_past_unit_weights() -> None:
    # E_K[tanh^2] = K - 2 K^2 + O(K^3) gives K* = (C_w - 1) / (2 C_w) at C_b = 0:
    # 7.5e-9 here, below fixed_points' scan (which starts at 1e-8).
    c_w = 1.0 + 1.5e-8
    d = depth_scales("tanh", c_w, 0.0)
    assert d.k_star == pytest.approx((c_w - 1.0) / (2.0 * c_w), rel=1e-6)
    assert d.phase == "critical"  # chi_perp = 1 + O((C_w - 1)^2)


def test_chaotic_rho_star_close_to_one_is_resolved() -> None:
    # C_b = 0.05 just past the boundary C_w ~ 1.7610: rho* lies in (0.99, 1).
    d = depth_scales("tanh", 1.762, 0.05)
    assert d.phase == "chaotic" and 0.99 < d.rho_star < 1.0
    f = float(correlation_map("tanh", 1.762, 0.05, d.k_star, d.rho_star))
    assert f == pytest.approx(d.rho_star, abs=1e-12)
    assert 0.0 < d.chi_c < 1.0


# Activations with a jump ----------------------------------------------------------------


def test_sign_is_chaotic_with_the_arcsine_fixed_point():
    from scipy.optimize import brentq

    # f(rho) = (C_b + C_w (2/pi) arcsin rho) / K*, K* = C_b + C_w (E[sign^2] = 1).
    c_w, c_b = 1.0, 0.1
    k = c_b + c_w
    f = lambda r: (c_b + c_w * 2 / math.pi * math.asin(r)) / k  # noqa: E731
    rho_star = brentq(lambda r: f(r) - r, 0.0, 0.99, xtol=1e-15)
    slope = c_w * 2 / math.pi / (k * math.sqrt(1 - rho_star**2))  # f'(rho*)
    d = depth_scales("sign", c_w, c_b)
    assert (d.phase, d.chi_perp, d.k_star) == ("chaotic", math.inf, pytest.approx(k, rel=1e-12))
    assert d.rho_star == pytest.approx(rho_star, abs=1e-12)
    # The slope by a central difference of step 1e-5 (1 - rho^2): error ~ h^2 f''' ~ 1e-10.
    assert d.chi_c == pytest.approx(slope, rel=1e-8)
    assert d.xi_c == pytest.approx(-1 / math.log(slope), rel=1e-8)


def test_step_is_chaotic_and_c_w_zero_is_not_infinite():
    d = depth_scales("step", 1.0, 0.1)
    assert d.phase == "chaotic" and 0 < d.rho_star < 1 and 0 < d.xi_c < math.inf
    assert float(chi_perp("step", 0.0, 1.0)) == 0.0  # no weights: no slope at all
