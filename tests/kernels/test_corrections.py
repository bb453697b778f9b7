"""1/width corrections: exact small cases, closed forms, finite differences, Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory import MLP, Activation, activation
from dltheory.finite import ensemble
from dltheory.finite.moments import preactivation_moments, ratio_estimate
from dltheory.kernels.corrections import (
    finite_width_corrections,
    gaussian_moments,
    linear_exact_excess_kurtosis,
    relu_exact_excess_kurtosis,
)

X = torch.tensor([[0.3, -1.2, 0.8], [1.0, 0.5, -0.2]], dtype=torch.float64)


@pytest.mark.parametrize("name", ["tanh", "gelu", "erf", "softplus", "relu", "sin"])
@pytest.mark.parametrize("k", [0.3, 1.7])
def test_moment_derivatives_match_finite_differences(name, k):
    act = activation(name)
    g = gaussian_moments(act, torch.tensor([k], dtype=torch.float64))
    h = 1e-3 * k

    def m(v: float) -> float:
        return float(act.second_moment(torch.tensor([v], dtype=torch.float64))[0])

    dm = (m(k + h) - m(k - h)) / (2 * h)
    d2m = (m(k + h) - 2 * m(k) + m(k - h)) / h**2
    assert float(g.dm[0]) == pytest.approx(dm, rel=2e-5, abs=1e-9)  # O(h^2) differences
    assert float(g.d2m[0]) == pytest.approx(d2m, rel=1e-4, abs=1e-6)
    # 2 d<s^2>/dK = E[(s^2)''] (the chi_parallel integrand), computed by another route.
    assert float(2 * g.dm[0]) == pytest.approx(float(act.square_second_derivative(k)), rel=1e-9)


def test_erf_moments_against_closed_forms():
    # <erf(z)^2>_K = (2/pi) arcsin(2K / (1 + 2K)) (Williams 1997).
    act = activation("erf")
    k = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
    g = gaussian_moments(act, k)
    m = 2 / math.pi * torch.asin(2 * k / (1 + 2 * k))
    dm = 4 / math.pi / ((1 + 2 * k) * torch.sqrt(1 + 4 * k))
    torch.testing.assert_close(g.m, m, rtol=1e-12, atol=0)
    torch.testing.assert_close(g.dm, dm, rtol=1e-10, atol=0)


def test_sin_moments_against_closed_forms():
    # sin^2 = (1 - cos 2z) / 2 and sin^4 = (3 - 4 cos 2z + cos 4z) / 8, E[cos(a z)] = e^{-a^2 K/2}.
    k = torch.tensor([0.1, 0.8, 2.5], dtype=torch.float64)
    g = gaussian_moments(activation("sin"), k)
    e2 = torch.exp(-2 * k)
    m = (1 - e2) / 2
    torch.testing.assert_close(g.m, m, rtol=1e-12, atol=0)
    torch.testing.assert_close(g.dm, e2, rtol=1e-10, atol=0)
    torch.testing.assert_close(g.d2m, -2 * e2, rtol=1e-9, atol=0)
    fourth = (3 - 4 * e2 + torch.exp(-8 * k)) / 8
    torch.testing.assert_close(g.var, fourth - m**2, rtol=1e-10, atol=0)


def test_relu_four_point_is_the_first_order_of_the_exact_law():
    widths = [37, 64, 50, 128]
    c = finite_width_corrections(MLP(4, "relu", c_w=2.0), X, widths)
    first_order = 15 * sum(1 / n for n in widths)
    expected = torch.full((2,), first_order, dtype=torch.float64)
    torch.testing.assert_close(c.excess_kurtosis[-1], expected)
    assert float(c.shift.abs().max()) < 1e-13  # <relu^2> is linear in K
    # The exact law minus its first order is second order: 3 * 25 * sum_{l<m} 1/(n_l n_m).
    second = 75 * sum(1 / (a * b) for i, a in enumerate(widths) for b in widths[i + 1 :])
    rest = relu_exact_excess_kurtosis(widths) - first_order - second
    a, b, c_, d = (1 / n for n in widths)
    third = 375 * (a * b * c_ + a * b * d + a * c_ * d + b * c_ * d) + 1875 * a * b * c_ * d
    assert rest == pytest.approx(third, rel=1e-9)


def test_linear_network_four_point_and_vertex():
    n, depth = 20, 3
    c = finite_width_corrections(MLP(depth, "identity", c_w=1.0), X, n)
    # z^(l+1) | layer l ~ N(0, |z^(l)|^2 / n): E[z^4] = 3 K^2 (1 + 2/n)^L exactly.
    assert float(c.excess_kurtosis[-1, 0]) == pytest.approx(6 * depth / n, rel=1e-12)
    assert linear_exact_excess_kurtosis([n] * depth) - 6 * depth / n == pytest.approx(
        3 * 3 * 4 / n**2 + 3 * 8 / n**3, rel=1e-12
    )
    k = c.kernel[:, 0]
    torch.testing.assert_close(c.vertex[1:, 0], 2 * torch.arange(1, depth + 1) * k[1:] ** 2)


def test_square_activation_shift_is_exact_at_layer_three():
    # s(z) = z^2, C_w = c, C_b = b. z^(2) | layer 1 is N(0, G), G = b + (c/n) sum s(z_j^(1))^2,
    # so E[(z^(3))^2] = b + 3 c E[G^2] = b + 3 c (E[G]^2 + (c^2/n) Var(z^4)), Var(z^4) = 96 K^4.
    square = Activation.from_callable(lambda z: z**2, name="square")
    c_w, c_b, n = 0.3, 0.1, 11
    spec = MLP(2, square, c_w=c_w, c_b=c_b)
    x = torch.tensor([0.9, -0.4], dtype=torch.float64)
    out = finite_width_corrections(spec, x, n)
    k1 = c_b + c_w * float(x.square().mean())
    assert float(out.shift[2, 0]) == pytest.approx(3 * c_w * c_w**2 * 96 * k1**4 / n, rel=1e-10)
    assert float(out.four_point[1, 0]) == pytest.approx(3 * c_w**2 * 96 * k1**4 / n, rel=1e-10)


def test_monte_carlo_kurtosis_follows_the_prediction():
    spec = MLP(3, "tanh", c_w=1.5, c_b=0.1)
    x = X[:1]
    n = 8
    theory = finite_width_corrections(spec, x, n)
    measured = preactivation_moments(ensemble(spec, n, 30_000, in_dim=3, seed=0), x)
    # Tolerance: 5 stderr plus the O(1/n^2) remainder of the expansion. Row K^(2) has none:
    # given layer 1, z^(2) is Gaussian with variance G = C_b + (C_w/n) sum s(z_j)^2 over
    # i.i.d. Gaussian z_j, so 3 Var(G) / E[G]^2 is exact. Row K^(3): the remainder is
    # bounded by its relative size in the exactly solvable ReLU net at the same widths,
    # 3 ((1 + 5/n)^2 - 1) / (30 / n) - 1 = 5 / (2n) (31 % at n = 8; tanh is lighter-tailed).
    pred = theory.excess_kurtosis[1:3]
    est = measured.excess_kurtosis
    relu_remainder = relu_exact_excess_kurtosis([n, n]) / (30 / n) - 1
    remainder = torch.tensor([[0.0], [relu_remainder]], dtype=torch.float64) * pred.abs()
    ok = (est.mean[1:3] - pred).abs() <= 5 * est.stderr[1:3] + remainder
    assert bool(ok.all()), (est.mean, est.stderr, pred)
    assert bool((est.mean[1:3] > 0.5 * pred).all())  # not zero: the 1/n effect is resolved


def test_monte_carlo_kernel_shift_of_gelu():
    spec = MLP(4, "gelu", c_w=1.5, c_b=0.1)
    x = X[:1]
    n = 8
    theory = finite_width_corrections(spec, x, n)
    measured = preactivation_moments(ensemble(spec, n, 40_000, in_dim=3, seed=1), x)
    shift = measured.second.mean[3:4, 0] - theory.kernel[3:4, 0]
    se = measured.second.stderr[3:4, 0]
    pred = theory.shift[3:4, 0]
    assert float(pred) > 8 * float(se)  # the prediction is well resolved
    # 5 stderr plus the O(1/n^2) remainder: O(1/n) relative to the 1/n term, 1/n = 12.5 %.
    assert float((shift - pred).abs()) <= 5 * float(se) + float(pred.abs()) / n


def test_ratio_estimate_against_a_gaussian_sample():
    z = torch.randn(20_000, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kurt, four = ratio_estimate(z.square().mean(1), z.pow(4).mean(1))
    assert abs(float(kurt.mean)) <= 5 * float(kurt.stderr)
    assert abs(float(four.mean)) <= 5 * float(four.stderr)
    assert float(kurt.stderr) == pytest.approx(math.sqrt(24 / 1e6), rel=0.1)


def test_errors():
    with pytest.raises(ValueError, match="x must be inputs with K"):
        finite_width_corrections(MLP(2, "tanh"), torch.zeros(3), 10)
    with pytest.raises(ValueError, match="width must be one width per hidden layer"):
        finite_width_corrections(MLP(2, "tanh"), torch.ones(3), [10])
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        finite_width_corrections(MLP(2, "tanh"), torch.ones(3), 0)
    with pytest.raises(TypeError, match="spec must be a dltheory Serial"):
        finite_width_corrections("mlp", torch.ones(3), 10)
    with pytest.raises(ValueError, match="x must be finite"):
        finite_width_corrections(MLP(2, "tanh"), torch.tensor([1.0, float("inf")]), 10)


def test_exact_linear_and_relu_laws_against_monte_carlo():
    x = torch.tensor([[0.7, -1.1]], dtype=torch.float64)
    for name, c_w, law in (
        ("identity", 1.3, linear_exact_excess_kurtosis),
        ("relu", 2.0, relu_exact_excess_kurtosis),
    ):
        spec = MLP(2, name, c_w=c_w)
        z = ensemble(spec, 5, 200_000, in_dim=2, seed=4, dtype=torch.float64).forward(x)
        kurt, _ = ratio_estimate(z[:, 0, 0] ** 2, z[:, 0, 0] ** 4)
        exact = law([5, 5])
        assert abs(float(kurt.mean) - exact) <= 5 * float(kurt.stderr), (name, kurt, exact)


def test_moment_and_ratio_errors():
    with pytest.raises(ValueError, match="k must be finite variances K > 0"):
        gaussian_moments(activation("tanh"), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="m4 must be the shape of m2"):
        ratio_estimate(torch.ones(3), torch.ones(4))
    with pytest.raises(TypeError, match="m2 must be"):
        ratio_estimate("a", torch.ones(3))


def test_gaussian_moments_accepts_activation_names():
    by_name = gaussian_moments("erf", torch.tensor([0.5]))
    by_object = gaussian_moments(activation("erf"), torch.tensor([0.5]))
    torch.testing.assert_close(by_name.var, by_object.var)
