"""Effective depth: equal-lambda architectures, the large-depth limit, the optimal prior."""

import pytest
import torch

from dltheory.bayes_linear import deep_linear_posterior, effective_depth_limit, optimal_sigma2


@pytest.fixture(scope="module")
def big():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 80, generator=g, dtype=torch.float64)  # P = 40, alpha = 1/2
    return x, 3 * torch.randn(40, generator=g, dtype=torch.float64)


def _rel(post, lim):
    return post.perp_variance / lim.perp_variance - 1


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_only_lambda_matters_as_depth_grows(big, lam):
    # Hanin & Zlokapa: at fixed lambda = P sum 1/n_l the posterior depends on the architecture
    # only through lambda as L grows; the leading-order error is O(1/L) (third cumulant of
    # log v), so doubling L (and the widths) halves the gap to the lambda-only point.
    x, y = big
    lim = effective_depth_limit(x, y, (80,) * 2)
    gaps = []
    for depth in (8, 16, 32):
        n = round(40 * depth / lam)
        post = deep_linear_posterior(x, y, (n,) * depth)
        assert post.effective_depth == pytest.approx(lam)
        other = effective_depth_limit(x, y, (n,) * depth)
        assert other.perp_variance == pytest.approx(
            effective_depth_limit(x, y, (round(40 / lam),)).perp_variance
        )
        gaps.append(abs(_rel(post, other)))
    assert gaps[0] < 2.5 / 8 and gaps[1] < 0.6 * gaps[0] and gaps[2] < 0.6 * gaps[1]
    del lim


def test_equal_lambda_equal_depth_different_widths_agree(big):
    # (320,)*4 and (240, 480)*2 have the same L and lambda = 40 * 4 / 320 = 1/2; their
    # scale laws differ only in O(sum 1/n_l^2) cumulants: their posteriors differ ten times
    # less than when lambda doubles,
    # as in the (160,)*4 network (lambda = 1).
    x, y = big
    a = deep_linear_posterior(x, y, (320,) * 4).perp_variance
    b = deep_linear_posterior(x, y, (240, 480, 240, 480)).perp_variance
    c = deep_linear_posterior(x, y, (160,) * 4).perp_variance
    assert abs(c / a - 1) > 0.1 and abs(a / b - 1) < 0.1 * abs(c / a - 1)


def test_large_effective_depth_reaches_the_data_dependent_scale(big):
    # lambda -> infinity with sigma2 = 1: v -> |theta*|^2 / P, the optimal-prior scale.
    x, y = big
    lim = effective_depth_limit(x, y, (4,) * 400)  # lambda = 4000
    assert lim.perp_variance == pytest.approx(lim.perp_variance_deep, rel=2e-3)
    post = deep_linear_posterior(x, y, (4,) * 400)
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    assert post.perp_variance == pytest.approx(q / 40, rel=0.05)


def test_optimal_sigma2_is_stationary_and_maximal(data):
    x, y = data
    widths = (4, 6)
    s2 = optimal_sigma2(x, y, widths)
    post = deep_linear_posterior(x, y, widths, s2)
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    # d log p / d log sigma2 = 0  <=>  E_post[1 / v] = P / q
    assert post.perp_variance_moment(-1.0) == pytest.approx(3 / q, rel=1e-10)
    for f in (0.99, 1.01):
        assert deep_linear_posterior(x, y, widths, s2 * f).log_evidence < post.log_evidence


def test_optimal_sigma2_closed_form_without_hidden_layers(data):
    x, y = data
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    assert optimal_sigma2(x, y, ()) == pytest.approx(5 * q / 3, rel=1e-14)


def test_optimal_sigma2_errors(data):
    x, _ = data
    with pytest.raises(ValueError, match="y must be non-zero"):
        optimal_sigma2(x, torch.zeros(3), (3,))
