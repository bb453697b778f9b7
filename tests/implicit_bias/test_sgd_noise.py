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
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 2, generator=g, dtype=torch.float64)
    y = torch.randn(8, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch_size must be <= the number of samples 8"):
        gradient_noise(X, 9, "without_replacement")
    with pytest.raises(ValueError, match="sampling must be one of"):
        gradient_noise(X, 2, "random")
    with pytest.raises(ValueError, match="eta must be < 2 / lambda_max"):
        sgd_fluctuation_dissipation(X, y, 1e3, 2, 10)
    with pytest.raises(ValueError, match="X must be of full column rank"):
        sgd_fluctuation_dissipation(
            torch.randn(2, 4, generator=g, dtype=torch.float64), y[:2], 0.1, 1, 10
        )
    assert math.isfinite(gradient_noise(X, 2).trace_covariance)


def _brute_second_moment_radius(X, eta, b, sampling):
    """Spectral radius of M -> E[(I - eta A_B) M (I - eta A_B)] by enumerating batches."""
    n, p = X.shape
    if sampling == "with_replacement":
        batches = [(list(t), 1.0) for t in itertools.product(range(n), repeat=b)]
    elif sampling == "without_replacement":
        batches = [(list(c), 1.0) for c in itertools.combinations(range(n), b)]
    else:
        q = b / n
        batches = [
            ([i for i in range(n) if m[i]], q ** sum(m) * (1 - q) ** (n - sum(m)))
            for m in itertools.product([0, 1], repeat=n)
        ]
    total = sum(w for _, w in batches)
    T = torch.zeros(p * p, p * p, dtype=torch.float64)
    for idx, w in batches:
        A = X[idx].T @ X[idx] / b
        C = torch.eye(p, dtype=torch.float64) - eta * A
        T += w / total * torch.kron(C, C)
    return float(torch.linalg.eigvals(T).abs().max())


@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement", "bernoulli"])
def test_mean_square_bound_is_exact(sampling):
    from dltheory.implicit_bias.sgd_noise import _mean_square_critical_eta

    X = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    eta = _mean_square_critical_eta(X, 2, sampling)
    assert _brute_second_moment_radius(X, 0.999 * eta, 2, sampling) < 1
    assert _brute_second_moment_radius(X, 1.001 * eta, 2, sampling) > 1


def test_mean_square_unstable_eta_raises():
    # eta = 0.3 < 2 / lambda_max(H) ~ 0.31, but one large sample makes b = 1 SGD blow up.
    g = torch.Generator().manual_seed(0)
    X = torch.randn(100, 2, generator=g, dtype=torch.float64)
    X[0] *= 10
    y = torch.randn(100, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"eta must be < 0\.004.*mean-square stability bound"):
        sgd_fluctuation_dissipation(X, y, 0.3, 1, 100)


def test_default_burn_in_is_capped():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 2, generator=g, dtype=torch.float64)
    X[:, 1] *= 1e-5  # lambda_min(H) ~ 1e-10: 20 relaxation times ~ 2e12 steps
    y = torch.randn(50, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="burn_in must be given explicitly"):
        sgd_fluctuation_dissipation(X, y, 0.1, 10, 10)
    res = sgd_fluctuation_dissipation(X, y, 0.1, 10, 10, burn_in=5, chains=2)
    assert math.isfinite(float(res.alignment.mean))


def test_non_finite_iterates_raise():
    from dltheory.implicit_bias.sgd_noise import _check_finite

    theta = torch.tensor([[1.0, math.inf]], dtype=torch.float64)
    with pytest.raises(ValueError, match="eta must be small enough that SGD stays finite"):
        _check_finite(theta, torch.zeros(1, 4, dtype=torch.float64), 9, 0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_gradient_noise_computes_in_float64(dtype):
    G = torch.tensor([[1000.0, 1.0], [1001.0, -1.0], [999.0, 0.0]])
    exact = gradient_noise(G.to(torch.float64), 1, "with_replacement")
    low = gradient_noise(G.to(dtype).to(torch.float64), 1, "with_replacement")
    res = gradient_noise(G.to(dtype), 1, "with_replacement")
    assert res.second_moment.dtype == torch.float64
    torch.testing.assert_close(res.covariance, low.covariance, rtol=0, atol=0)
    assert res.trace_covariance >= 0 and math.isfinite(exact.trace_covariance)
