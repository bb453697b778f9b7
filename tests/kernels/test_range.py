"""Kernels at extreme scales: no overflow in sqrt(k11 k22), homogeneity of C_b = 0 ReLU
kernels, float64 range errors that name the layer, large-variance quadrature pairs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from scipy import integrate

from dltheory import MLP, activation

X = torch.tensor([[1.0, 0.0, 0.5], [0.3, -1.0, 0.2], [0.0, 0.4, -0.9]], dtype=torch.float64)


@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("scale", [1e78, 1e-85])
def test_relu_kernels_are_homogeneous_at_extreme_scales(backend, scale):
    # C_b = 0: K(a x) = a^2 K(x) exactly in arithmetic; float64 only rounds (a few ulps
    # per layer through 3 layers: 1e-14 relative).
    spec = MLP(3, "relu", c_w=2.0)
    base = spec.kernel(X, backend=backend)
    big = spec.kernel(scale * X, backend=backend)
    for got, want in ((big.nngp, base.nngp), (big.ntk, base.ntk)):
        torch.testing.assert_close(got / scale**2, want, rtol=1e-14, atol=0)


def test_erf_and_tanh_maps_at_huge_variance():
    k = torch.tensor(1e200, dtype=torch.float64)
    assert float(activation("tanh").nngp_map(k, k, k)) == 1.0  # tanh(sqrt(K) z)^2 = 1 a.e.
    # Closed form (4/pi) / sqrt(1 + 4K) on the diagonal, without overflow in (1 + 2K)^2.
    erf = activation("erf")
    assert float(erf.ntk_map(k, k, k)) == pytest.approx(4 / math.pi / 2e100, rel=1e-15)
    assert float(erf.ntk_map(k, 0.5 * k, k)) == pytest.approx(
        4 / math.pi / (2e200 * math.sqrt(0.75)),
        rel=1e-15,  # det ~ 4 K^2 (1 - rho^2)
    )


def test_kernel_leaving_float64_range_names_the_layer():
    with pytest.raises(ValueError, match=r"K\^\(1\) = inf at Dense layer 1 of 4"):
        MLP(3, "tanh").kernel(1e155 * torch.ones(2, 3, dtype=torch.float64))
    # ReLU at C_w = 10: K grows 5x a layer, Theta a little faster: inf near layer 440.
    with pytest.raises(ValueError, match=r"kernels stay within float64 range.*Dense layer 4\d\d"):
        MLP(500, "relu", c_w=10.0).kernel(torch.ones(2, 3, dtype=torch.float64))


def test_underflowing_kernel_warns_naming_the_layer():
    with pytest.warns(RuntimeWarning, match=r"underflows float64.*Dense layer"):
        MLP(250, "relu", c_w=0.1).kernel(X)  # K shrinks 20x a layer: subnormal near 237
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLP(3, "relu", c_w=0.1).kernel(X)  # no warning in range


def _nested(k11, k12, k22, f):
    """E[f(u) f(v)] by adaptive scipy quadrature, split where f(u) and f(v) turn."""
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    a = math.sqrt(k11)
    b, c = k12 / a, math.sqrt(k22 - (k12 / a) ** 2)

    def inner(x):
        y0, w = -b * x / c, 1 / c
        pts = [p for p in (y0 - 50 * w, y0 - 5 * w, y0, y0 + 5 * w, y0 + 50 * w) if -12 < p < 12]
        return integrate.quad(lambda y: f(b * x + c * y) * phi(y), -12, 12, points=pts or None,
                              epsabs=1e-15, epsrel=1e-13, limit=500)[0]  # fmt: skip

    pts = [t / a for t in (-50, -5, 0, 5, 50)]
    return integrate.quad(lambda x: f(a * x) * inner(x) * phi(x), -12, 12, points=pts,
                          epsabs=1e-15, epsrel=1e-13, limit=500)[0]  # fmt: skip


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_tanh_ntk_of_inputs_of_size_1e4(backend):
    # K^(1) ~ 5e7: E[tanh' tanh'] ~ 1e-8 multiplies Theta^(1) ~ 5e7. Reference: the nested
    # adaptive quadrature (epsrel 1e-13); tolerance 1e-12 = the maps' relative tolerance
    # times Theta's O(1) result, plus the reference's 1e-13.
    x = torch.tensor([[1e4, 0.0], [0.6e4, 0.8e4]], dtype=torch.float64)
    k = MLP(1, "tanh").kernel(x, backend=backend)
    k11, k12, k22 = (float(x[i] @ x[j]) / 2 for i, j in ((0, 0), (0, 1), (1, 1)))
    nngp = _nested(k11, k12, k22, math.tanh)
    slope = _nested(k11, k12, k22, lambda t: 1 - math.tanh(t) ** 2)
    assert float(k.nngp[0, 1]) == pytest.approx(nngp, abs=1e-12)
    assert float(k.ntk[0, 1]) == pytest.approx(nngp + slope * k12, abs=1e-11)
