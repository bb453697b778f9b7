"""ReLU path counting: exact Jacobian / NTK moments vs Monte Carlo over sampled nets."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory.finite import Estimate, empirical_ntk
from dltheory.finite.path_counting import (
    _layer_factors,
    relu_jacobian_moments,
    relu_ntk_mean,
    relu_ntk_second_moment,
)
from dltheory.finite.relu_jacobian import _measure, sample_relu_jacobians
from dltheory.spec import Dense, Nonlinearity, Serial

N_STD = 5.0


def _agree(samples: torch.Tensor, prediction: float) -> float:
    estimate = Estimate.from_samples(samples)
    assert estimate.agrees(prediction, n_std=N_STD), (float(estimate.mean), prediction)
    return float(estimate.zscore(prediction))


# ---- closed forms, checked against hand computations ------------------------------


def test_moments_of_width_one_layers_by_hand():
    # Width 1: X = 2 xi chi^2_1, xi ~ Bernoulli(1/2): E X = 1, E X^2 = 6, E X^3 = 60.
    m = relu_jacobian_moments(4, (1, 1), c_out=3.0)
    unit = 3.0 / 4
    assert m.second == pytest.approx(unit)
    assert m.fourth == pytest.approx(3 * unit**2 * 36)
    assert m.moment(6) == pytest.approx(15 * unit**3 * 60**2)
    assert m.moment(0) == 1.0
    assert m.alive_probability == pytest.approx(0.25)


def test_large_width_fourth_moment_and_leading_log_law():
    m = relu_jacobian_moments(7, (1000,) * 3)
    assert m.fourth / m.fourth_large_width == pytest.approx(1.0, abs=1e-3)
    assert m.beta == pytest.approx(0.015)
    assert m.log_hidden_mean == pytest.approx(m.log_hidden_mean_leading, rel=0.01)
    assert m.log_hidden_var == pytest.approx(m.log_hidden_var_leading, rel=0.01)


def test_leading_order_log_normal_is_off_at_width_ten():
    # Exact per-layer Var log X at n = 10 exceeds 5/n by ~73% and the mean -5/(2n)
    # by ~23% (heavy lower tail from rare layers with 1-2 active neurons); both O(1/n).
    errors = []
    for n in (10, 100):
        m = relu_jacobian_moments(3, (n,) * 4)
        errors.append((m.log_hidden_var / m.beta - 1, m.log_hidden_mean / (-m.beta / 2) - 1))
    (var10, mean10), (var100, mean100) = errors
    assert 0.65 < var10 < 0.8 and 0.18 < mean10 < 0.28
    assert 0.0 < var100 < 0.05 and 0.0 < mean100 < 0.03


def test_ntk_second_moment_width_one_by_hand():
    # n0 = 2, one hidden neuron, c_out = 1: W1 x = g1, W2 = g2 with g ~ N(0, 1), and
    # Theta = (2/2) xi g2^2 + (1/1) xi g1^2: E Theta = 1, E Theta^2 = E[xi] E[(g1^2 + g2^2)^2] = 4.
    x = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert float(relu_ntk_mean(x, (1,), c_out=1.0)) == pytest.approx(1.0)
    assert float(relu_ntk_second_moment(x, (1,), c_out=1.0)) == pytest.approx(4.0)


def test_ntk_mean_scales_with_input_norm_and_counts_weight_layers():
    x = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    mean = relu_ntk_mean(x, (5, 6, 7), c_out=1.5)
    assert torch.allclose(mean, torch.tensor([4 * 1.5 * 9 / 3] * 2, dtype=torch.float64))
    standard = relu_ntk_mean(x[0], (5, 6, 7), c_out=1.5, parametrization="standard")
    assert float(standard) == pytest.approx(3.0 * (7 + 0.75 * (3 + 5 + 6)))
    ratio = relu_ntk_second_moment(x, (5, 6, 7)) / relu_ntk_mean(x, (5, 6, 7)) ** 2
    assert torch.allclose(ratio, ratio[0])


# ---- the sampler against autograd and empirical_ntk (float64, exact) -------------


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_sampler_matches_autograd_and_empirical_ntk(parametrization):
    n0, widths, c_out = 3, (5, 4, 6), 1.7
    lr_b = {"lr_b": 0.0} if parametrization == "standard" else {}
    layers = []
    for n in widths:
        layers += [Dense(2.0, 0.0, width=n, parametrization=parametrization, **lr_b)]
        layers += [Nonlinearity("relu")]
    layers.append(Dense(c_out, 0.0, width=1, parametrization=parametrization, **lr_b))
    spec = Serial(*layers, in_dim=n0)
    x = torch.tensor([0.7, -1.2, 0.4], dtype=torch.float64)
    u = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    for seed in range(3):
        net = spec.sample(seed=seed, dtype=torch.float64)
        denses = [m for m in net if hasattr(m, "w_mult")]
        weights = [(d.weight * d.w_mult).detach()[None] for d in denses]
        _, kappa = _layer_factors(n0, widths, c_out, parametrization)
        entry, grad, _, active, theta = _measure(
            lambda layer, ws=weights: ws[layer - 1], 1, (n0, *widths), x, u, kappa
        )
        jac = torch.autograd.functional.jacobian(lambda v, f=net: f(v[None])[0, 0], x)
        assert torch.allclose(entry, jac[1:2])
        assert torch.allclose(grad, jac.square().sum()[None])
        assert torch.allclose(theta, empirical_ntk(net, x[None])[0])
        h = x
        for w in weights[:-1]:
            h = torch.relu(w[0] @ h)
        assert int(active[0, -1]) == int((h > 0).sum())


# ---- exact laws vs Monte Carlo (fixed seeds, 5 standard errors) -------------------


def test_jacobian_moments_vs_monte_carlo():
    n0, widths, c_out = 3, (5, 7, 4), 1.3
    m = relu_jacobian_moments(n0, widths, c_out=c_out)
    s = sample_relu_jacobians(n0, widths, 60_000, c_out=c_out, seed=0)
    _agree(s.entry.square(), m.second)
    _agree(s.entry.pow(4), m.fourth)
    _agree(s.gradient_sq_norm, c_out)  # E|grad z|^2 = n_0 * c_out / n_0
    _agree(s.hidden_sq_norm, 1.0)
    _agree(s.alive.to(torch.float64), m.alive_probability)


def test_log_normal_laws_vs_monte_carlo():
    n0, widths, c_out = 4, (6, 5, 8, 6), 2.0
    m = relu_jacobian_moments(n0, widths, c_out=c_out)
    s = sample_relu_jacobians(n0, widths, 60_000, c_out=c_out, x=[1.0, -2.0, 0.5, 3.0], seed=1)
    alive = s.alive
    logs = {
        "hidden": (s.hidden_sq_norm[alive].log(), m.log_hidden_mean, m.log_hidden_var),
        "entry": ((n0 / c_out) * s.entry[alive].square()).log(),
        "gradient": (s.gradient_sq_norm[alive] / c_out).log(),
    }
    logs["entry"] = (logs["entry"], m.log_entry_mean, m.log_entry_var)
    logs["gradient"] = (logs["gradient"], m.log_gradient_mean, m.log_gradient_var)
    for sample, mean, var in logs.values():
        _agree(sample, mean)
        _agree((sample - mean).square(), var)
    # the leading-order law is visibly off at these widths: 5 stderr rejects it
    hidden = Estimate.from_samples((logs["hidden"][0] - m.log_hidden_mean).square())
    assert not hidden.agrees(m.log_hidden_var_leading, n_std=N_STD)


def test_active_counts_are_binomial():
    widths = (6, 9, 4)
    s = sample_relu_jacobians(2, widths, 40_000, seed=2)
    k = s.active[s.alive].to(torch.float64)
    for layer, n in enumerate(widths):
        # K_l | previous layers alive ~ Binomial(n, 1/2); here conditioned on all alive.
        p_alive = 1 - 2.0**-n
        _agree(k[:, layer], n / 2 / p_alive)


def test_indicators_are_fair_and_independent_of_even_functions_of_weights():
    # Naive float64 two-layer net: xi^(l)_i = 1{z^(l)_i > 0}.
    g = torch.Generator().manual_seed(3)
    e, n0, n1, n2 = 100_000, 3, 4, 5
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w1 = torch.randn(e, n1, n0, generator=g, dtype=torch.float64) * math.sqrt(2 / n0)
    w2 = torch.randn(e, n2, n1, generator=g, dtype=torch.float64) * math.sqrt(2 / n1)
    z1 = w1 @ x
    xi1 = (z1 > 0).double()
    z2 = (w2 @ torch.relu(z1)[..., None])[..., 0]
    xi2 = (z2 > 0).double()
    _agree(xi1[:, 0], 0.5)
    # Given an alive first layer; a dead one (prob 2^-n1) switches every later neuron off.
    _agree(xi2[xi1.sum(1) > 0, 3], 0.5)
    _agree(xi2[:, 3], 0.5 * (1 - 2.0**-n1))
    _agree(xi1[:, 0] * xi1[:, 1], 0.25)
    _agree(xi1[:, 2] * xi2[:, 1], 0.25)
    _agree(xi1[:, 1] * w1[:, 1, 2].square(), 0.5 * 2 / n0)
    _agree(xi2[:, 0] * xi1[:, 2] * w2[:, 0, 2].square(), 0.25 * 2 / n1)
    sd1 = math.sqrt(2 * float(x.square().sum()) / n0)
    _agree(xi1[:, 3] * z1[:, 3].abs(), 0.5 * sd1 * math.sqrt(2 / math.pi))
    # ... but not of odd ones: E[xi z] = E|z| / 2 != E[xi] E[z] = 0.
    odd = Estimate.from_samples(xi1[:, 3] * z1[:, 3])
    assert float(odd.zscore(0.0)) > 50


@pytest.mark.parametrize("parametrization", ["ntk", "standard"])
def test_ntk_moments_vs_monte_carlo(parametrization):
    n0, widths, c_out = 3, (4, 6, 5), 1.5
    x = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    s = sample_relu_jacobians(
        n0, widths, 60_000, c_out=c_out, x=x, ntk=True, parametrization=parametrization, seed=4
    )
    _agree(s.ntk, float(relu_ntk_mean(x, widths, c_out, parametrization)))
    _agree(s.ntk.square(), float(relu_ntk_second_moment(x, widths, c_out, parametrization)))


def test_relu_ntk_mean_is_the_mean_of_empirical_ntk_on_mlp():
    from dltheory import MLP

    depth, width, c_out = 2, 8, 0.5
    spec = MLP(depth, "relu", c_w=[2.0] * depth + [c_out], c_b=0.0)
    x = torch.tensor([[0.3, -1.0, 0.8, 0.1]], dtype=torch.float64)
    thetas = torch.stack(
        [
            empirical_ntk(spec.sample(width, in_dim=4, seed=i, dtype=torch.float64), x)[0, 0]
            for i in range(300)
        ]
    )
    _agree(thetas, float(relu_ntk_mean(x[0], (width,) * depth, c_out)))


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("c_out", [1.0, 3.0])
def test_ntk_second_moment_width_one_any_depth_closed_form(depth, c_out):
    # n_0 = 1 and one neuron per layer: layer l is alive with probability 1/2 independently
    # of |w_l| (w_l ~ N(0, c_l)), and then Theta = x^2 P sum_l kappa_l / w_l^2 with
    # P = prod_k w_k^2, kappa_l = c_l / n_{l-1} = c_l. So, by E w^2 = c, E w^4 = 3 c^2,
    # E Theta^2 = 2^-L x^4 sum_{l,m} c_l c_m E[P^2 / (w_l^2 w_m^2)], with
    # E[P^2 / w_l^4] = prod_{k != l} 3 c_k^2 and E[P^2 / (w_l^2 w_m^2)] =
    # c_l c_m prod_{k != l, m} 3 c_k^2 for l != m (an independent derivation).
    c = [2.0] * depth + [c_out]
    x = 1.7
    total = 0.0
    for l in range(depth + 1):
        for m in range(depth + 1):
            rest = math.prod(3 * c[k] ** 2 for k in range(depth + 1) if k not in (l, m))
            total += c[l] * c[m] * (rest if l == m else c[l] * c[m] * rest)
    expected = 2.0**-depth * x**4 * total
    got = float(relu_ntk_second_moment(torch.tensor([x], dtype=torch.float64), (1,) * depth, c_out))
    assert got == pytest.approx(expected, rel=1e-13)


def test_ntk_ratio_is_well_below_the_single_term_law():
    # exp(5 sum 1/n_l) is E[T_l^2] / E[T_l]^2 of one term of Theta, not the ratio of the sum
    n0, n, depth = 3, 20, 8
    widths = (n,) * depth
    x = torch.ones(n0, dtype=torch.float64)
    mean = float(relu_ntk_mean(x, widths))
    exact = float(relu_ntk_second_moment(x, widths)) / mean**2
    single_term = math.exp(5 * depth / n)  # 7.39
    assert exact < 0.6 * single_term
    s = sample_relu_jacobians(n0, widths, 20_000, x=x, ntk=True, seed=7)
    ratio = Estimate.from_samples(s.ntk.square() / mean**2)
    assert ratio.agrees(exact, n_std=N_STD)
    assert float(ratio.mean) + N_STD * float(ratio.stderr) < 0.8 * single_term  # MC alone


def test_high_moments_stay_finite_in_log_space():
    m = relu_jacobian_moments(3, (2000,))
    value = m.moment(200)  # the direct product overflowed to NaN
    assert math.isfinite(value) and value > 0
    # (c/n0)^k (2k-1)!! E[(2/n chi^2_K)^k]: check the log against a direct log-space sum
    from scipy.special import gammaln, logsumexp
    from scipy.stats import binom

    k, n = 100, 2000
    K = torch.arange(1, n + 1, dtype=torch.float64).numpy()
    log_e = logsumexp(
        binom.logpmf(K, n, 0.5) + k * math.log(2) + gammaln(K / 2 + k) - gammaln(K / 2)
    )
    log_df = math.lgamma(2 * k + 1) - k * math.log(2) - math.lgamma(k + 1)
    expected = k * math.log(2.0 / 3) + log_df + k * math.log(2.0 / n) + log_e
    assert math.log(value) == pytest.approx(expected, rel=1e-12)
    assert m.moment(2) == pytest.approx(m.second, rel=1e-14)
    assert m.moment(4) == pytest.approx(m.fourth, rel=1e-13)
    m = relu_jacobian_moments(1, (2,) * 50)
    with pytest.warns(RuntimeWarning, match=r"moment\(400\) = exp\(.*log_moment\(400\) holds"):
        assert m.moment(400) == math.inf  # beyond float64
    assert math.isfinite(m.log_moment(400))


def test_deep_narrow_fourth_moment_lives_in_log_space():
    # widths (2,) * 700: prod_l (1 + 5/2) = 3.5^700 ~ 1e381 overflows float64 (the old code
    # raised OverflowError in exp(5 beta) and returned fourth = inf without a word).
    with pytest.warns(RuntimeWarning, match="exceeds the float64 range") as caught:
        m = relu_jacobian_moments(2, [2] * 700)
    assert sorted(str(w.message).split(" =")[0] for w in caught) == ["fourth", "fourth_large_width"]
    assert m.fourth == math.inf and m.fourth_large_width == math.inf
    # log 3 + 2 log(c_out / n_0) + 700 log(7/2), and log 3 + 2 log(1) + 5 * 700 / 2
    assert m.log_fourth == pytest.approx(math.log(3) + 700 * math.log(3.5), rel=1e-14)
    assert m.log_fourth_large_width == pytest.approx(math.log(3) + 1750.0, rel=1e-14)
    assert m.log_moment(4) == pytest.approx(m.log_fourth, rel=1e-12)
    small = relu_jacobian_moments(3, (10, 20))  # in range: the logs are the values' logs
    assert math.log(small.fourth) == pytest.approx(small.log_fourth, rel=1e-14)
    assert math.exp(small.log_fourth_large_width) == pytest.approx(
        small.fourth_large_width, rel=1e-14
    )


def test_sampler_device_defaults_to_cpu_and_keeps_cpu_draws():
    x = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    a = sample_relu_jacobians(3, (5, 4), 6, x=x, ntk=True, seed=3)
    b = sample_relu_jacobians(3, (5, 4), 6, x=x.tolist(), ntk=True, seed=3, device="cpu")
    torch.manual_seed(3)  # the global generator is not used
    g = torch.Generator().manual_seed(3)
    c = sample_relu_jacobians(3, (5, 4), 6, x=x, ntk=True, generator=g)
    for t in (b, c):
        assert torch.equal(a.entry, t.entry) and torch.equal(a.ntk, t.ntk)
    # the first layer is drawn first: its weights come from randn on the generator's device
    w = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = (w * (2.0 / 3) ** 0.5) @ x
    assert torch.equal(a.active[:, 0], (z > 0).sum(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampler_on_cuda_follows_x():
    x = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64, device="cuda")
    s = sample_relu_jacobians(3, (5, 4), 8, x=x, u=[0.0, 1.0, 0.0], ntk=True, seed=3)
    assert s.entry.device.type == "cuda" and s.ntk.device.type == "cuda"


# ---- errors ---------------------------------------------------------------------


_ERRORS = [
    (lambda: relu_jacobian_moments(0, (3,)), ValueError, "n0 must be an integer >= 1. Got 0."),
    (lambda: relu_jacobian_moments(2, ()), ValueError, "widths must be non-empty"),
    (lambda: relu_jacobian_moments(2, 5), TypeError, "widths must be a sequence of hidden"),
    (
        lambda: relu_jacobian_moments(2, (3, 0)),
        ValueError,
        "widths must be a sequence of integers >= 1. Got (3, 0).",
    ),
    (lambda: relu_jacobian_moments(2, (3, 2.5)), TypeError, "integers >= 1"),
    (lambda: relu_jacobian_moments(2, (3, None)), TypeError, "Entry None is not an integer"),
    (lambda: relu_jacobian_moments(2, (True,)), TypeError, "Entry True is not an integer"),
    (lambda: relu_jacobian_moments(2, (3, -1)), ValueError, "integers >= 1. Got (3, -1)."),
    (
        lambda: sample_relu_jacobians(2, (3,), 4, generator=torch.Generator(), device="meta"),
        ValueError,
        "generator must be on the sampling device meta. Got 'a generator on cpu'.",
    ),
    (lambda: relu_jacobian_moments(2, (3,), c_out=0.0), ValueError, "c_out must be > 0. Got 0.0."),
    (
        lambda: relu_jacobian_moments(2, (3,)).moment(3),
        ValueError,
        "order must be even. Got 3. Odd moments",
    ),
    (
        lambda: relu_ntk_mean(torch.ones(2, 2, 2), (3,)),
        ValueError,
        "x must be an input (n_0,) or a batch (N, n_0)",
    ),
    (lambda: relu_ntk_mean([1.0, float("nan")], (3,)), ValueError, "x must be finite"),
    (
        lambda: relu_ntk_mean([1.0], (3,), parametrization="mup"),
        ValueError,
        "parametrization must be one of 'ntk', 'standard'",
    ),
    (lambda: sample_relu_jacobians(2, (3,), 1), ValueError, "n_networks must be an integer >= 2"),
    (
        lambda: sample_relu_jacobians(2, (3,), 4, x=[1.0, 2.0, 3.0]),
        ValueError,
        "x must be a vector of n0 = 2 entries",
    ),
    (lambda: sample_relu_jacobians(2, (3,), 4, u=[0.0, 0.0]), ValueError, "u must be nonzero"),
    (
        lambda: sample_relu_jacobians(2, (3,), 4, dtype=torch.int64),
        TypeError,
        "dtype must be a floating torch.dtype",
    ),
    (
        lambda: sample_relu_jacobians(2, (3,), 4, generator=3),
        TypeError,
        "generator must be a torch.Generator",
    ),
]


@pytest.mark.parametrize(("call", "error", "text"), _ERRORS)
def test_error_messages(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_sizes_and_overflow_are_refused_in_one_line():
    with pytest.raises(ValueError, match="widths must be small enough for the memory budget"):
        relu_jacobian_moments(3, (10**12,))
    with pytest.raises(ValueError, match="x must be small enough that the result is finite"):
        relu_ntk_mean(torch.full((3,), 1e300, dtype=torch.float64), (4,))
    with pytest.raises(ValueError, match="x must be small enough that the result is finite"):
        relu_ntk_second_moment(torch.full((3,), 1e200, dtype=torch.float64), (4,))
    with pytest.raises(ValueError, match="n0 must be small enough for the memory budget"):
        sample_relu_jacobians(10**12, (4,), 2)
    with pytest.raises(ValueError, match="widths must be small enough for the memory budget"):
        sample_relu_jacobians(3, (4, 10**12), 2)
