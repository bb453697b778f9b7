import itertools
import math

import pytest
import torch

from dltheory.implicit_bias import (
    gradient_noise,
    linear_regression_gradients,
    sgd_fluctuation_dissipation,
)


def _brute(G, b, sampling):
    n = G.shape[0]
    if sampling == "with_replacement":
        batches = [(list(t), 1.0) for t in itertools.product(range(n), repeat=b)]
    elif sampling == "without_replacement":
        batches = [(list(c), 1.0) for c in itertools.combinations(range(n), b)]
    else:
        p = b / n
        batches = []
        for mask in itertools.product([0, 1], repeat=n):
            k = sum(mask)
            batches.append(([i for i in range(n) if mask[i]], p**k * (1 - p) ** (n - k)))
    total = sum(w for _, w in batches)
    second = torch.zeros(G.shape[1], G.shape[1], dtype=torch.float64)
    for idx, w in batches:
        g = G[idx].sum(0) / b if idx else torch.zeros(G.shape[1], dtype=torch.float64)
        second += w / total * torch.outer(g, g)
    return second


@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement", "bernoulli"])
def test_second_moment_matches_enumeration(sampling):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(5, 3, generator=g, dtype=torch.float64)
    noise = gradient_noise(G, 2, sampling)
    torch.testing.assert_close(noise.second_moment, _brute(G, 2, sampling), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        noise.covariance, noise.second_moment - torch.outer(G.mean(0), G.mean(0))
    )


def test_linear_regression_gradients_average_to_the_loss_gradient():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(7, generator=g, dtype=torch.float64)
    theta = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = ((X @ theta - y) ** 2).sum() / (2 * 7)
    (grad,) = torch.autograd.grad(loss, theta)
    torch.testing.assert_close(linear_regression_gradients(X, y, theta.detach()).mean(0), grad)


def test_fdr_identities_hold_within_five_standard_errors():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = (
        X @ torch.ones(4, dtype=torch.float64)
        + 1
        + 0.5 * torch.randn(32, generator=g, dtype=torch.float64)
    )
    res = sgd_fluctuation_dissipation(X, y, 0.1, 4, 1000, chains=64, seed=3)
    assert res.holds(5.0)
    # the identity is sharp: the factor eta/2 is resolved (not eta or eta/4)
    assert abs(res.ratio - 1) < 0.25
    assert float(res.alignment.mean) > 10 * float(res.alignment.stderr)


def test_validation_messages():
    X = torch.randn(8, 2, dtype=torch.float64)
    y = torch.randn(8, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch_size must be <= the number of samples 8"):
        gradient_noise(X, 9, "without_replacement")
    with pytest.raises(ValueError, match="sampling must be one of"):
        gradient_noise(X, 2, "random")
    with pytest.raises(ValueError, match="eta must be < 2 / lambda_max"):
        sgd_fluctuation_dissipation(X, y, 1e3, 2, 10)
    with pytest.raises(ValueError, match="X must be of full column rank"):
        sgd_fluctuation_dissipation(torch.randn(2, 4, dtype=torch.float64), y[:2], 0.1, 1, 10)
    assert math.isfinite(gradient_noise(X, 2).trace_covariance)
