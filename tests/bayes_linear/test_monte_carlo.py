"""The exact evidence and scale posterior against importance sampling over real weight matrices."""

import math

import pytest
import torch

from dltheory.bayes_linear import deep_linear_posterior, monte_carlo_posterior


@pytest.mark.parametrize(("widths", "sigma2"), [((4,), 1.0), ((3, 6), 1.0), ((5, 5, 5), 0.8)])
def test_evidence_and_scale_within_4_standard_errors(data, widths, sigma2):
    x, y = data
    exact = deep_linear_posterior(x, y, widths, sigma2)
    mc = monte_carlo_posterior(x, y, widths, sigma2, n_samples=40_000, seed=11)
    # The estimates are means of i.i.d. weights (ratio: delta method); 4 standard errors.
    assert abs(float(mc.evidence.zscore(exact.evidence))) < 4
    assert abs(float(mc.perp_variance.zscore(exact.perp_variance))) < 4
    assert mc.effective_sample_size > 1000  # the standard errors are trustworthy


def test_no_hidden_layer_is_exact(data):
    x, y = data
    mc = monte_carlo_posterior(x, y, (), 2.0, n_samples=3)
    assert abs(mc.log_evidence - deep_linear_posterior(x, y, (), 2.0).log_evidence) < 1e-12


def test_reproducible_and_seeded(data):
    x, y = data
    a = monte_carlo_posterior(x, y, (3, 4), n_samples=50, seed=5)
    b = monte_carlo_posterior(x, y, (3, 4), n_samples=50, seed=5)
    c = monte_carlo_posterior(x, y, (3, 4), n_samples=50, seed=6)
    assert torch.equal(a.scales, b.scales) and not torch.equal(a.scales, c.scales)


def test_scales_follow_the_chi_square_product(data):
    # E[v] = sigma2^{L+1} / n_0 under the prior (each chi2_n / n has mean 1).
    x, y = data
    mc = monte_carlo_posterior(x, y, (3, 4), n_samples=20_000, seed=2)
    se = float(mc.scales.std()) / math.sqrt(20_000)
    assert abs(float(mc.scales.mean()) - 1 / 5) < 4 * se


def test_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        monte_carlo_posterior(x, y, (3,), n_samples=1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        monte_carlo_posterior(x, y, (3,), seed=1.5)
