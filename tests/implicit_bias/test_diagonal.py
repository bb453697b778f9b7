import math

import numpy as np
import pytest
import torch

from dltheory.implicit_bias import (
    diagonal_flow,
    diagonal_flow_limit,
    min_l1_interpolant,
    min_weighted_l2_interpolant,
    q_alpha_argmin,
    q_function,
    q_potential,
)


def _problem(seed, n=3, d=8):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    shape = 0.5 + torch.rand(d, generator=g, dtype=torch.float64)
    return X, y, shape


def test_q_derivative_is_arcsinh_half():
    z = torch.linspace(-5, 5, 11, dtype=torch.float64)
    h = 1e-6
    numeric = (q_function(z + h) - q_function(z - h)) / (2 * h)
    torch.testing.assert_close(numeric, torch.asinh(z / 2), atol=1e-8, rtol=0)


@pytest.mark.parametrize("alpha", [1e-2, 1.0, 1e2])
def test_flow_limit_equals_q_argmin(alpha):
    X, y, shape = _problem(int(math.log10(alpha)) + 5)
    flow = diagonal_flow_limit(X, y, alpha, shape)
    argmin = q_alpha_argmin(X, y, alpha, shape)
    assert float((flow - argmin).abs().max()) < 1e-6
    torch.testing.assert_close(X @ argmin, y, atol=1e-10, rtol=0)


def test_flow_limit_equals_q_argmin_over_a_sweep():
    # Intermediate alphas on a smaller problem, at a looser integrator tolerance (still
    # ~1e-12 accurate, far below the 1e-6 checked); the ends 1e-2, 1e2 run above at the
    # default rtol, so together alpha = 1e-2, 1e-1, 1, 10, 1e2 are covered.
    X, y, shape = _problem(11, n=2, d=4)
    for alpha in (0.1, 1.0, 10.0):
        flow = diagonal_flow_limit(X, y, alpha, shape, rtol=1e-9)
        argmin = q_alpha_argmin(X, y, alpha, shape)
        assert float((flow - argmin).abs().max()) < 1e-6, alpha


def test_argmin_beats_feasible_perturbations():
    # KKT optimality checked independently: Q increases along null-space directions.
    X, y, shape = _problem(3)
    beta = q_alpha_argmin(X, y, 0.3, shape)
    null = torch.linalg.svd(X).Vh[X.shape[0] :]
    q0 = q_potential(beta, 0.3, shape)
    for v in null:
        for eps in (1e-3, -1e-3):
            assert q_potential(beta + eps * v, 0.3, shape) > q0


def test_limits_l1_and_weighted_l2():
    X, y, shape = _problem(1)
    l2 = min_weighted_l2_interpolant(X, y, shape)
    assert float((q_alpha_argmin(X, y, 1e6, shape) - l2).abs().max()) < 1e-9
    # the weighted-L2 solution is orthogonal (in the W^-1 metric) to the null space of X
    null = torch.linalg.svd(X).Vh[X.shape[0] :]
    assert float((null @ (l2 / shape**2)).abs().max()) < 1e-10
    l1 = min_l1_interpolant(X, y)
    errors = [
        float((q_alpha_argmin(X, y, a, shape) - l1).abs().max()) for a in (1e-5, 1e-40, 1e-100)
    ]
    assert errors[2] < 1e-2 and errors[0] >= errors[2] - 1e-12
    assert float(l1.abs().sum()) <= float(q_alpha_argmin(X, y, 1.0, shape).abs().sum()) + 1e-12


def test_validation_messages():
    X, y, _ = _problem(0)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        q_alpha_argmin(X, y, 0.0)
    with pytest.raises(ValueError, match="y must be of length 3"):
        q_alpha_argmin(X, y[:2], 1.0)
    with pytest.raises(ValueError, match="X must be of full row rank"):
        q_alpha_argmin(np.ones((2, 4)), [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="theta0 must be nonzero"):
        diagonal_flow_limit(X, y, 1.0, torch.zeros(8))


def test_extreme_alpha_stays_finite_and_feasible():
    X, y, shape = _problem(3)
    for alpha in (1e-200, 1e200):
        beta = q_alpha_argmin(X, y, alpha, shape)
        assert bool(torch.isfinite(beta).all())
        torch.testing.assert_close(X @ beta, y, atol=1e-12, rtol=0)
        assert math.isfinite(float(q_potential(beta, alpha, shape)))
    l1 = min_l1_interpolant(X, y)
    assert float((q_alpha_argmin(X, y, 1e-200, shape) - l1).abs().max()) < 1e-2
    l2 = min_weighted_l2_interpolant(X, y, shape)
    torch.testing.assert_close(q_alpha_argmin(X, y, 1e200, shape), l2, atol=1e-12, rtol=0)


def test_q_potential_matches_direct_formula_at_moderate_alpha():
    _, _, shape = _problem(2)
    beta = torch.tensor([1.0, -2.0, 0.0, 3e5, 1e-300, 0.5, -0.1, 7.0], dtype=torch.float64)
    for alpha in (1e-3, 1.0, 1e3):
        scale = alpha**2 * shape**2
        direct = (scale * q_function(beta / scale)).sum()
        torch.testing.assert_close(q_potential(beta, alpha, shape), direct, rtol=1e-14, atol=0)


def test_ill_conditioned_design_reaches_machine_precision():
    X = torch.tensor([[1.0, 1.0, 0.0, 0.5], [1.0, 1.0 + 1e-5, 1e-5, 0.5]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0], dtype=torch.float64)
    beta = q_alpha_argmin(X, y, 1.0)
    assert float((X @ beta - y).abs().max()) <= 1e-10 * float(y.abs().max())
    # KKT: grad Q(beta) = asinh(beta / 2) lies in the row space of X. (diagonal_flow_limit
    # agrees to 4e-14 relative, but takes seconds on this stiff problem.)
    u = torch.asinh(beta / 2)
    nu = torch.linalg.lstsq(X.T, u[:, None]).solution[:, 0]
    assert float((X.T @ nu - u).abs().max()) <= 1e-10 * float(u.abs().max())


def test_more_validation_messages():
    X, y, _ = _problem(0)
    for bad in (0.0, 1.0, 2.0):
        with pytest.raises(ValueError, match="rtol must be"):
            diagonal_flow_limit(X, y, 1.0, rtol=bad)
    with pytest.raises(ValueError, match="rtol must be a float in"):
        diagonal_flow(X, y, 1.0, [1.0], rtol=1.5)
    with pytest.raises(ValueError, match="X must be of full row rank"):
        min_weighted_l2_interpolant(np.ones((2, 4)), [1.0, 1.0])
    with pytest.raises(ValueError, match="beta must be a 1-D array"):
        q_potential(1.0, 1.0)
    with pytest.raises(ValueError, match="beta must be finite"):
        q_potential([1.0, float("nan")], 1.0)
