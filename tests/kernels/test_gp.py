"""Exact GP inference: posterior, evidence and its maximisation against dense NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from dltheory import MLP
from dltheory.kernels import gp_posterior, log_marginal_likelihood, maximize_evidence


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    x, xs = rng.standard_normal((30, 3)), rng.standard_normal((6, 3))
    spec = MLP(depth=2, activation="relu", c_w=2.0, c_b=0.1)
    k = spec.kernel(torch.from_numpy(x)).nngp.numpy()
    k_sn = spec.kernel(torch.from_numpy(xs), torch.from_numpy(x)).nngp.numpy()
    k_ss = spec.kernel(torch.from_numpy(xs)).nngp.numpy()
    y = np.stack([np.sin(x[:, 0]), x[:, 1] ** 2], 1)
    return k, k_sn, k_ss, y


def test_posterior_equals_dense_inverse(problem):
    k, k_sn, k_ss, y = problem
    noise = 0.05
    inv = np.linalg.inv(k + noise * np.eye(len(k)))  # independent dense reference
    post = gp_posterior(k, k_sn, y, k_test_test=k_ss, noise=noise)
    # cond(K + noise I) ~ 1e3: the two routes agree to ~1e3 ulps of the entries.
    np.testing.assert_allclose(post.mean, k_sn @ inv @ y, rtol=0, atol=1e-11)
    np.testing.assert_allclose(post.cov, k_ss - k_sn @ inv @ k_sn.T, rtol=0, atol=1e-11)
    diag = gp_posterior(k, k_sn, y[:, 0], k_test_test=np.diagonal(k_ss), noise=noise)
    np.testing.assert_allclose(diag.var, np.diagonal(post.cov), rtol=0, atol=1e-11)
    assert diag.mean.shape == (6,) and post.jitter == 0.0


def test_evidence_equals_the_gaussian_log_density(problem):
    k, _, _, y = problem
    cov = k + 0.1 * np.eye(len(k))
    expected = sum(scipy.stats.multivariate_normal(np.zeros(len(k)), cov).logpdf(c) for c in y.T)
    assert log_marginal_likelihood(k, y, noise=0.1) == pytest.approx(expected, rel=1e-12)


def test_errors_name_the_argument(problem):
    k, k_sn, _, y = problem
    with pytest.raises(ValueError, match=r"y_train must be of length 30"):
        gp_posterior(k, k_sn, y[:5])
    with pytest.raises(ValueError, match=r"k_test_train must be of shape \(M, 30\)"):
        gp_posterior(k, k_sn[:, :4], y)
    with pytest.raises(ValueError, match="k_train_train must be finite"):
        gp_posterior(np.full_like(k, np.nan), k_sn, y)
    with pytest.raises(ValueError, match="noise must be a variance >= 0"):
        gp_posterior(k, k_sn, y, noise=-1.0)
    with pytest.raises(ValueError, match=r"kernel must be positive definite.*smallest eigenvalue"):
        gp_posterior(-k, k_sn, y)


def test_maximize_evidence_finds_a_stationary_point_that_beats_the_start():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.standard_normal(40)
    fit = maximize_evidence(x, y, depths=(1, 2), c_w=1.0, c_b=0.1, noise=0.1, max_iter=60)
    k = MLP(fit.depth, "relu", c_w=fit.c_w, c_b=fit.c_b).kernel(torch.from_numpy(x)).nngp
    # Reported evidence = the independently evaluated one at the reported parameters.
    assert fit.log_marginal_likelihood == pytest.approx(
        log_marginal_likelihood(k, y, noise=fit.noise), rel=1e-10
    )
    start = MLP(1, "relu", c_w=1.0, c_b=0.1).kernel(torch.from_numpy(x)).nngp
    assert fit.log_marginal_likelihood > log_marginal_likelihood(start, y, noise=0.1)
    assert set(fit.by_depth) == {1, 2}
    # Gradient check of the reported gradient: central differences of the evidence in
    # log noise (step 1e-4: truncation ~1e-8 of the curvature, far below the 1e-4 tolerance).
    h = 1e-4
    up = log_marginal_likelihood(k, y, noise=fit.noise * np.exp(h))
    down = log_marginal_likelihood(k, y, noise=fit.noise * np.exp(-h))
    assert fit.gradient[2] == pytest.approx((up - down) / (2 * h), abs=1e-4)


def test_maximize_evidence_validates():
    with pytest.raises(ValueError, match="depths must be a non-empty tuple"):
        maximize_evidence(np.ones((3, 2)), np.ones(3), depths=())
    with pytest.raises(ValueError, match="noise must be > 0"):
        maximize_evidence(np.ones((3, 2)), np.ones(3), noise=0.0)


def test_reported_evidence_gradient_matches_central_differences():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 3))
    y = np.sin(x[:, 0]) + 0.1 * rng.standard_normal(30)
    # One L-BFGS-B iteration: the returned point is not an optimum, the gradient is O(1).
    fit = maximize_evidence(x, y, depths=(2,), c_w=1.0, c_b=0.3, noise=0.2, max_iter=1)
    p = np.log([fit.c_w, fit.c_b, fit.noise])
    h = 1e-4  # central differences of an independent evaluation: error ~h^2 ~ 1e-8

    def lml(q):
        c_w, c_b, noise = np.exp(q)
        k = MLP(2, "relu", c_w=c_w, c_b=c_b).kernel(torch.from_numpy(x)).nngp
        return log_marginal_likelihood(k, y, noise=noise)

    fd = [(lml(p + h * e) - lml(p - h * e)) / (2 * h) for e in np.eye(3)]
    assert max(abs(g) for g in fd) > 0.1  # a real test of the gradient's scale
    np.testing.assert_allclose(fit.gradient, fd, rtol=1e-4, atol=1e-6)


def test_targets_near_the_float64_limit(problem):
    # The mean is linear in y and y is scaled by a power of two inside: 2^996 is exact.
    k, k_sn, k_ss, y = problem
    base = gp_posterior(k, k_sn, y, k_test_test=k_ss, noise=0.05)
    big = gp_posterior(k, k_sn, y * 2.0**996, k_test_test=k_ss, noise=0.05)
    assert np.array_equal(big.mean, base.mean * 2.0**996)
    assert np.array_equal(big.cov, base.cov)  # the covariance does not depend on y
    assert big.log_marginal_likelihood == -np.inf  # -y^T K_y^-1 y / 2 ~ -2^1992
    assert log_marginal_likelihood(k, y * 2.0**996, noise=0.05) == -np.inf
    huge = gp_posterior(k, k_sn, y * 1e300, noise=0.05)
    np.testing.assert_allclose(huge.mean / 1e300, base.mean, rtol=0, atol=1e-12)
    mid = log_marginal_likelihood(k, y * 2.0**400, noise=0.05)
    quad = float((y * np.linalg.solve(k + 0.05 * np.eye(len(k)), y)).sum())
    assert mid == pytest.approx(-0.5 * quad * 2.0**800, rel=1e-10)  # cond ~ 1e3 * eps
