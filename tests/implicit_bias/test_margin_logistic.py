import math

import numpy as np
import pytest
from scipy.optimize import minimize

from dltheory.implicit_bias import (
    logistic_gd,
    max_margin,
    max_margin_direction,
    separable_dataset,
    soudry_asymptotics,
)


def test_max_margin_recovers_the_constructed_solution_and_kkt():
    X, y, w_hat = separable_dataset(25, 3, margin=0.4, seed=2)
    res = max_margin(X, y)
    assert float((res.w - w_hat).abs().max()) < 1e-9
    assert abs(res.margin - 0.4) < 1e-10
    assert res.support.tolist() == [0, 1, 2]
    assert float(res.margins.min()) > 1 - 1e-10


def test_max_margin_matches_brute_force_in_2d():
    X, y, _ = separable_dataset(15, 2, margin=0.3, seed=5)
    phis = np.linspace(0, 2 * np.pi, 200001)
    dirs = np.stack([np.cos(phis), np.sin(phis)], 1)
    best = ((y[:, None] * X).numpy() @ dirs.T).min(0).max()
    margin = max_margin(X, y).margin
    assert best <= margin + 1e-12 and margin - best < 1e-4


def test_non_separable_and_bad_labels_raise():
    with pytest.raises(ValueError, match="linearly separable through the origin"):
        max_margin_direction([[1.0, 0.0], [1.0, 0.0]], [1, -1])
    with pytest.raises(ValueError, match=r"y must be labels in \{-1, \+1\}"):
        max_margin_direction([[1.0, 0.0]], [0])
    with pytest.raises(ValueError, match="eta must be > 0"):
        logistic_gd([[1.0, 0.0]], [1], -1.0, 10)
    with pytest.raises(TypeError, match="steps must be an integer"):
        logistic_gd([[1.0, 0.0]], [1], 0.1, 10.5)


def test_logistic_gd_follows_soudry_asymptotics():
    eta = 0.1
    X, y, _ = separable_dataset(20, 2, margin=0.5, seed=0)
    traj = logistic_gd(X, y, eta, 10**5, n_log=40)
    theory = soudry_asymptotics(X, y, eta)
    assert theory.determined
    # w(t) - w_hat log t -> w_tilde
    offset = traj.w[-1] - theory.w_hat * math.log(10**5)
    assert float((offset - theory.w_tilde).abs().max()) < 1e-2
    late = traj.steps >= 10**3
    log_t = np.log(traj.steps[late].numpy().astype(float))
    slope = np.polyfit(log_t, 1 / np.tan(traj.angle[late].numpy()), 1)[0]
    assert abs(slope / theory.cot_slope - 1) < 0.05
    assert bool((traj.loss[1:].diff() < 0).all())


def test_exponential_loss_has_the_same_limit():
    X, y, _ = separable_dataset(10, 2, margin=0.5, seed=1)
    a = logistic_gd(X, y, 0.05, 20_000, loss="exponential", n_log=10)
    b = logistic_gd(X, y, 0.05, 20_000, loss="logistic", n_log=10)
    assert float(a.angle[-1]) < 0.05 and float(b.angle[-1]) < 0.05


def _independent_max_margin(X: np.ndarray) -> np.ndarray:
    """w_hat for labels +1 by SLSQP on the primal min |w|^2 / 2, X w >= 1 (another solver)."""
    res = minimize(
        lambda w: 0.5 * w @ w, np.ones(X.shape[1]), jac=lambda w: w, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda w: X @ w - 1.0, "jac": lambda w: X}],
        options={"ftol": 1e-15, "maxiter": 500},
    )  # fmt: skip
    return res.x


def test_soudry_offset_with_more_support_vectors_than_dimensions():
    # Three points on the margin in R^2: the dual a is not unique and a least-squares fit of
    # z_i . w = log(eta / a_i) is wrong. w_tilde must solve eta exp(-z_i . w) = a_i >= 0 on the
    # margin with sum a_i z_i = w_hat (Soudry et al. 2018). Independent computation: w_hat by
    # SLSQP on the primal, then w_tilde as the minimiser of the convex
    # F(w) = sum_S eta exp(-z_i . w) + w_hat . w by BFGS from scratch.
    X = np.array([[1.0, 2.0], [1.0, -1.0], [1.0, 0.5], [2.0, 0.3]])
    y = np.ones(4)
    eta = 0.1
    theory = soudry_asymptotics(X, y, eta)
    assert theory.determined
    w_tilde, w_hat = theory.w_tilde.numpy(), theory.w_hat.numpy()
    w_hat_ref = _independent_max_margin(X)
    np.testing.assert_allclose(w_hat, w_hat_ref, atol=1e-7)  # SLSQP's ftol 1e-15 on |w|^2
    on_margin = X @ w_hat_ref < 1 + 1e-6
    assert on_margin.tolist() == [True, True, True, False]
    S = X[on_margin]
    ref = minimize(
        lambda w: (eta * np.exp(-S @ w).sum() + w_hat_ref @ w,
                   w_hat_ref - S.T @ (eta * np.exp(-S @ w))),
        np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-12},
    )  # fmt: skip
    # |grad F| <= 1e-12 and the Hessian S^T diag(a) S has eigenvalues ~ 0.1: |dw| ~ 1e-10,
    # plus the 1e-7 error of w_hat_ref divided by the same eigenvalues.
    np.testing.assert_allclose(w_tilde, ref.x, atol=1e-5)
    a = eta * np.exp(-X[:3] @ w_tilde)
    assert np.abs(X[:3].T @ a - w_hat).max() < 1e-10
    traj = logistic_gd(X, y, eta, 10**5, loss="exponential", n_log=2)
    offset = traj.w[-1].numpy() - w_hat * math.log(10**5)
    assert np.abs(offset - w_tilde).max() < 1e-3  # the old answer was 1.8e-2 off


def test_soudry_slopes_are_infinite_when_w_tilde_is_parallel_to_w_hat():
    # Symmetric support (1, +-2) and a far point: by the reflection symmetry w_tilde = (c, 0)
    # is parallel to w_hat = (1, 0), the angle is 0 at all times, cot angle is infinite
    # (the rounding left |P_perp w_tilde| ~ 1e-16 and cot_slope = 2e15 before).
    X = np.array([[1.0, 2.0], [1.0, -2.0], [3.0, 0.5]])
    theory = soudry_asymptotics(X, np.ones(3), eta=1.0)
    np.testing.assert_allclose(theory.w_hat.numpy(), [1.0, 0.0], atol=1e-12)
    assert theory.cot_slope == math.inf and theory.angle_coefficient == 0.0
    # a_i = 1/2 on both support points: eta exp(-w_tilde_1) = 1/2, w_tilde = (log 2, 0)
    np.testing.assert_allclose(theory.w_tilde.numpy(), [math.log(2.0), 0.0], atol=1e-12)
    assert theory.cot_intercept == math.inf  # sign of u . w_tilde = log 2 > 0


def test_max_margin_at_twenty_thousand_points_is_exact():
    # The old dual L-BFGS-B with a dense n x n Gram could not finish n = 3,000 in minutes
    # (and needs 3.2 GB for the Gram at n = 20,000). Rows shuffled so the support vectors
    # are not first; the solution is known exactly (separable_dataset).
    X, y, w_hat = separable_dataset(20_000, 5, margin=0.25, seed=3)
    perm = np.random.default_rng(0).permutation(20_000)
    res = max_margin(X[perm], y[perm])
    assert float((res.w - w_hat).abs().max()) < 1e-9
    assert sorted(perm[res.support.numpy()].tolist()) == [0, 1, 2, 3, 4]
    assert float(res.margins.min()) >= 1 - 1e-8


def test_soudry_offset_undetermined_and_degenerate_cases():
    # one support vector in R^2: w_tilde is fixed only along it
    res = soudry_asymptotics([[1.0, 0.0], [2.0, 1.0]], [1, 1], 0.1)
    assert not res.determined
    np.testing.assert_allclose(res.w_tilde.numpy(), [math.log(0.1), 0.0], atol=1e-12)
    # (1, 1) sits on the margin with a_i = 0 in every dual: no w_tilde exists
    with pytest.raises(ValueError, match="X, y must be non-degenerate"):
        soudry_asymptotics([[1.0, 0.0], [1.0, 1.0]], [1, 1], 0.1)


def test_logistic_gd_overflow_raises():
    with pytest.raises(ValueError, match="eta, w0 must be such that GD stays finite"):
        logistic_gd(
            [[1.0, 0.5], [1.0, -0.5]], [1, 1], 0.1, 100, loss="exponential", w0=[-1e3, -1e3]
        )
