"""deep_linear_posterior: evidence closed forms, min-norm predictive mean, variances, errors."""

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import scipy.stats as st
import torch

from dltheory.bayes_linear import deep_linear_posterior, effective_depth_limit


def _gauss_log_evidence(x, y, var):
    cov = var * (x @ x.T).numpy()
    return st.multivariate_normal(np.zeros(len(y)), cov).logpdf(y.numpy())


def test_no_hidden_layer_is_gaussian(data):
    x, y = data
    post = deep_linear_posterior(x, y, (), sigma2=1.7)
    assert abs(post.log_evidence - _gauss_log_evidence(x, y, 1.7 / 5)) < 1e-12
    assert post.perp_variance == pytest.approx(1.7 / 5, rel=1e-14)


@pytest.mark.parametrize(("n1", "sigma2"), [(2, 1.0), (4, 0.6), (9, 2.0), (400, 1.0)])
def test_one_hidden_layer_bessel_form(data, n1, sigma2):
    # p = (2 pi kappa)^{-P/2} det^{-1/2} 2 z^{nu/2} K_nu(2 sqrt z) / Gamma(n1/2), nu = (n1 - P)/2,
    # kappa = sigma2^2 2 / (n0 n1), z = q / (2 kappa); scipy's kve as the Bessel reference.
    x, y = data
    p, n0 = x.shape
    gram = (x @ x.T).numpy()
    q = float(y.numpy() @ np.linalg.solve(gram, y.numpy()))
    kappa = sigma2**2 * 2 / (n0 * n1)
    z = q / (2 * kappa)
    nu = (n1 - p) / 2
    arg = 2 * math.sqrt(z)
    log_e = math.log(2) + 0.5 * nu * math.log(z) + math.log(sp.kve(nu, arg)) - arg
    ref = (
        -0.5 * p * math.log(2 * math.pi * kappa)
        - 0.5 * np.linalg.slogdet(gram)[1]
        + log_e
        - sp.gammaln(n1 / 2)
    )
    post = deep_linear_posterior(x, y, (n1,), sigma2)
    assert abs(post.log_evidence - ref) < 1e-12


def test_two_hidden_layers_by_quadrature(data):
    # E[G^{-P/2} e^{-z/G}], G = g1 g2: the g2 expectation in Bessel form, then quad over g1.
    x, y = data
    p, n0 = x.shape
    n1, n2 = 3, 6
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    kappa = 4 / (n0 * n1 * n2)
    z = q / (2 * kappa)
    k1, k2 = n1 / 2, n2 / 2
    nu = k2 - p / 2

    def inner(g1):  # E_{g2}[(g1 g2)^{-P/2} exp(-z / (g1 g2))]
        w = z / g1
        return g1 ** (-p / 2) * 2 * w ** (nu / 2) * sp.kv(nu, 2 * math.sqrt(w)) / sp.gamma(k2)

    expect = si.quad(
        lambda g: inner(g) * st.gamma.pdf(g, k1), 0, np.inf, epsabs=0, epsrel=1e-12, limit=400
    )[0]
    ref = (
        -0.5 * p * math.log(2 * math.pi * kappa)
        - 0.5 * float(torch.logdet(x @ x.T))
        + math.log(expect)
    )
    post = deep_linear_posterior(x, y, (n1, n2))
    assert abs(post.log_evidence - ref) < 1e-9  # quad's relative 1e-12, with margin


def test_predictive_mean_is_min_norm_interpolant(data):
    x, y = data
    post = deep_linear_posterior(x, y, (4, 7, 3), sigma2=1.3)
    theta_pinv = torch.linalg.pinv(x) @ y  # the min-norm solution, computed independently
    x_test = torch.randn(6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pred = post.predict(x_test)
    assert float((pred.mean - x_test @ theta_pinv).abs().max()) < 1e-12
    at_train = post.predict(x)
    assert float((at_train.mean - y).abs().max()) < 1e-12
    assert float(at_train.variance.abs().max()) < 1e-12


def test_predictive_variance_is_scale_times_perp_norm(data):
    x, y = data
    post = deep_linear_posterior(x, y, (4, 6))
    basis, _ = np.linalg.qr(x.numpy().T)  # independent projector onto the row space
    xt = np.random.default_rng(2).normal(size=(4, 5))
    perp = xt - xt @ basis @ basis.T
    pred = post.predict(torch.from_numpy(xt), full_cov=True)
    assert np.allclose(pred.variance.numpy(), post.perp_variance * (perp**2).sum(1), rtol=1e-13)
    assert np.allclose(pred.covariance.numpy(), post.perp_variance * perp @ perp.T, rtol=1e-12)
    assert post.perp_norm2_mean == pytest.approx(2 * post.perp_variance, rel=1e-15)
    assert post.perp_norm2_variance > 0


@pytest.mark.parametrize("n", [10**6, 10**10, 10**12])
def test_wide_limit_keeps_the_first_order_correction(data, n):
    # Huge widths: v = (1/n_0) H, H = prod chi2_n / n with E H = 1, Var H = 2L/n + O(1/n^2).
    # With f(H) = H^{-P/2} exp(-Y / H), Y = n_0 q / 2, a second-order expansion of E f(H)
    # gives log p - log p_GP = (L / n) (f''/f)(1) and E_post[v] n_0 - 1 = (2L / n) (Y - P/2),
    # (f''/f)(1) = P/2 - 2Y + (Y - P/2)^2. These O(1/n) terms (1e-12 at n = 1e12) are
    # resolved only if no digits are lost; the next order is O(1/n^2).
    x, y = data
    p, n0, depth = 3, 5, 3
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    big_y = n0 * q / 2
    post = deep_linear_posterior(x, y, (n,) * depth)
    gp = _gauss_log_evidence(x, y, 1 / n0)
    coef_ev = depth * (p / 2 - 2 * big_y + (big_y - p / 2) ** 2)
    coef_v = 2 * depth * (big_y - p / 2)
    # tolerance: O(1/n) relative second order, plus 1e-16 absolute rounding times n
    tol = 50 / n + 1e-15 * n
    assert abs((post.log_evidence - gp) * n - coef_ev) < tol * max(1, abs(coef_ev))
    assert abs((post.perp_variance * n0 - 1) * n - coef_v) < tol * max(1, abs(coef_v))


def test_large_problem_neither_overflows_nor_underflows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 600, generator=g, dtype=torch.float64)
    y = torch.randn(300, generator=g, dtype=torch.float64)
    post = deep_linear_posterior(x, y, (2000,) * 100, sigma2=1.0)
    assert math.isfinite(post.log_evidence) and post.log_evidence < -300
    assert 0 < post.evidence < 1e-100
    # lambda = 15 with L = 100: the leading-order point is within O(1/L) (here ~1%).
    lim = effective_depth_limit(x, y, (2000,) * 100)
    assert abs(post.perp_variance / lim.perp_variance - 1) < 0.05


def test_zero_targets(data):
    x, _ = data
    post = deep_linear_posterior(x, torch.zeros(3), (8,))
    # E_post[v] = kappa Gamma(k + 1 - P/2) / Gamma(k - P/2) = kappa (k - P/2), k = 4, kappa = 2/40
    assert post.perp_variance == pytest.approx(0.05 * 2.5, rel=1e-14)
    with pytest.raises(ValueError, match="y must be non-zero"):
        deep_linear_posterior(x, torch.zeros(3), (2,))


def test_errors(data):
    x, y = data
    with pytest.raises(ValueError, match=r"x must be at most n_0 rows \(P <= n_0"):
        deep_linear_posterior(x.T, torch.ones(5), (3,))
    bad = x.clone()
    bad[2] = bad[0] + bad[1]
    with pytest.raises(ValueError, match="x must be of full row rank P"):
        deep_linear_posterior(bad, y, (3,))
    with pytest.raises(ValueError, match="widths must be a sequence of integers >= 1"):
        deep_linear_posterior(x, y, (3, 0))
    with pytest.raises(ValueError, match="sigma2 must be > 0"):
        deep_linear_posterior(x, y, (3,), sigma2=0.0)
    with pytest.raises(ValueError, match="sigma2 must be > 0"):
        deep_linear_posterior(x, y, (3,), sigma2=-1.0)
    with pytest.raises(ValueError, match="y must be a vector of P = 3 targets"):
        deep_linear_posterior(x, torch.ones(4), (3,))
    with pytest.raises(ValueError, match="x must be finite"):
        deep_linear_posterior(x * math.nan, y, (3,))
    with pytest.raises(TypeError, match="widths must be a sequence of integers"):
        deep_linear_posterior(x, y, (3.5,))
    post = deep_linear_posterior(x, y, (3,))
    with pytest.raises(ValueError, match="x_test must be of shape \\(M, n_0\\) with n_0 = 5"):
        post.predict(torch.ones(2, 4))


def test_extreme_target_scale_is_refused_not_garbage(data):
    # y = 1e150 against a unit prior: log E ~ -1e150, and the posterior mean of v would be
    # a difference of two such numbers; float64 cannot resolve it, so a clear error.
    x, y = data
    with pytest.raises(ValueError, match="y must be of moderate size relative to the prior"):
        deep_linear_posterior(x, 1e150 * y, (3, 6))
    # Rescaling sigma2 with y (sigma2^{L+1} -> s^2 sigma2^{L+1}) gives the same scale posterior.
    a = deep_linear_posterior(x, 1e3 * y, (3, 6), sigma2=1e2)
    b = deep_linear_posterior(x, y, (3, 6), sigma2=1.0)
    assert a.perp_variance == pytest.approx(1e6 * b.perp_variance, rel=1e-12)
