"""Infinite-width kernels vs exact laws and independent high-precision recursions."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from dltheory import MLP

F64 = torch.float64


def _inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_he_relu_keeps_variance_at_every_layer(backend):
    x = _inputs(7, 5)
    k = MLP(depth=12, activation="relu", c_w=2.0, c_b=0.0).kernel(
        x, return_layers=True, backend=backend
    )
    expected = 2 * (x * x).sum(1) / 5
    assert len(k.layers) == 13
    for layer in k.layers:
        torch.testing.assert_close(layer.nngp.diagonal(), expected, rtol=1e-14, atol=0)


def test_linear_network_follows_affine_recursion_exactly():
    """K^(l+1) = C_b + C_w K^(l) (the notes' (C_w)^2 in one line is a slip), and
    Theta^(l+1) = K^(l+1) + C_w Theta^(l) for the identity activation."""
    x = _inputs(5, 3)
    c_w, c_b, depth = 0.7, 0.3, 6
    k = MLP(depth, "identity", c_w=c_w, c_b=c_b).kernel(x, return_layers=True)
    nngp = c_b + c_w * (x @ x.T) / 3
    ntk = nngp.clone()
    for layer in k.layers:
        torch.testing.assert_close(layer.nngp, nngp, rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(layer.ntk, ntk, rtol=1e-14, atol=1e-15)
        nngp = c_b + c_w * nngp
        ntk = nngp + c_w * ntk


def _relu_reference(x: np.ndarray, depth: int, c_w: float, c_b: float, dps: int = 40):
    """Arc-cosine recursion for one pair at `dps` digits (Cho & Saul 2009)."""
    mpmath.mp.dps = dps
    n, d = x.shape
    xs = [[mpmath.mpf(float(v)) for v in row] for row in x]
    out_k = np.zeros((n, n))
    out_t = np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            dot = lambda p, q: sum(u * v for u, v in zip(xs[p], xs[q], strict=True)) / d  # noqa: E731
            k11 = c_b + c_w * dot(a, a)
            k22 = c_b + c_w * dot(b, b)
            k12 = c_b + c_w * dot(a, b)
            t12 = k12
            for _ in range(depth):
                norm = mpmath.sqrt(k11 * k22)
                rho = max(min(k12 / norm, 1), -1)
                theta = mpmath.acos(rho)
                j = (mpmath.sin(theta) + (mpmath.pi - theta) * mpmath.cos(theta)) / (2 * mpmath.pi)
                k12_new = c_b + c_w * norm * j
                t12 = k12_new + c_w * (mpmath.pi - theta) / (2 * mpmath.pi) * t12
                k11, k22, k12 = c_b + c_w * k11 / 2, c_b + c_w * k22 / 2, k12_new
            out_k[a, b] = out_k[b, a] = float(k12)
            out_t[a, b] = out_t[b, a] = float(t12)
    return out_k, out_t


@pytest.mark.parametrize("backend", ["fused", "torch"])
@pytest.mark.parametrize("c_b", [0.0, 0.1])
def test_deep_relu_matches_mpmath_to_1e10(backend, c_b):
    x = _inputs(10, 6, seed=1)
    x[3] = x[1]  # a duplicated input: an exact 0 angle off the diagonal too
    k = MLP(20, "relu", c_w=2.0, c_b=c_b).kernel(x, backend=backend)
    ref_k, ref_t = _relu_reference(x.numpy(), 20, 2.0, c_b)
    np.testing.assert_allclose(k.nngp.numpy(), ref_k, rtol=1e-10, atol=0)
    np.testing.assert_allclose(k.ntk.numpy(), ref_t, rtol=1e-10, atol=0)


def _gh_pair(f, k11, k12, k22, deg=300):
    """2-D tensor Gauss-Hermite (independent of the Mehler series)."""
    z, w = np.polynomial.hermite_e.hermegauss(deg)
    w = w / math.sqrt(2 * math.pi)
    a = math.sqrt(k11)
    b = k12 / a
    c = math.sqrt(max(k22 - b * b, 0.0))
    return float((w[:, None] * w[None, :] * f(a * z[:, None]) * f(b * z[:, None] + c * z)).sum())


def _tanh_reference(x: np.ndarray, depth: int, c_w: float, c_b: float):
    s = np.tanh
    ds = lambda u: 1 - np.tanh(u) ** 2  # noqa: E731
    n, d = x.shape
    gram = x @ x.T / d
    ref_k, ref_t = np.zeros((n, n)), np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            k11, k22, k12 = (c_b + c_w * gram[i, j] for i, j in ((a, a), (b, b), (a, b)))
            t12 = k12
            for _ in range(depth):
                new11 = c_b + c_w * _gh_pair(s, k11, k11, k11)
                new22 = c_b + c_w * _gh_pair(s, k22, k22, k22)
                new12 = c_b + c_w * _gh_pair(s, k11, k12, k22)
                t12 = new12 + c_w * _gh_pair(ds, k11, k12, k22) * t12
                k11, k22, k12 = new11, new22, new12
            ref_k[a, b] = ref_k[b, a] = k12
            ref_t[a, b] = ref_t[b, a] = t12
    return ref_k, ref_t


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_tanh_matches_independent_quadrature_to_1e9(backend):
    x = _inputs(6, 4, seed=2)
    k = MLP(3, "tanh", c_w=1.5, c_b=0.1).kernel(x, backend=backend)
    ref_k, ref_t = _tanh_reference(x.numpy(), 3, 1.5, 0.1)
    np.testing.assert_allclose(k.nngp.numpy(), ref_k, rtol=0, atol=1e-9)
    np.testing.assert_allclose(k.ntk.numpy(), ref_t, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("name", "c_w", "c_b", "depth"),
    [
        ("relu", 2.0, 0.0, 10_000),
        ("erf", 1.5, 0.05, 10_000),
        ("sin", 1.0, 0.0, 10_000),
        # tanh's recursion costs more per layer as K^(l) ~ 1 / (2 l) shrinks: depth 200
        # takes about 1 s, 1000 about 12 s, 10_000 about 4 minutes (slow).
        ("tanh", 1.0, 0.0, 200),
        pytest.param("tanh", 1.0, 0.0, 10_000, marks=pytest.mark.slow),
    ],
)
def test_deep_kernels_stay_finite_symmetric_psd(name, c_w, c_b, depth):
    x = _inputs(6, 3, seed=3)
    k = MLP(depth, name, c_w=c_w, c_b=c_b).kernel(x)
    for m in (k.nngp, k.ntk):
        assert bool(torch.isfinite(m).all())
        torch.testing.assert_close(m, m.T, rtol=0, atol=0)
        eig = torch.linalg.eigvalsh(m)
        assert float(eig.min()) >= -1e-10 * float(eig.abs().max())


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "erf", "sin", "identity", "gelu"])
def test_fused_and_torch_backends_agree(name):
    x = _inputs(9, 4, seed=4)
    y = _inputs(5, 4, seed=5)
    spec = MLP(4, name, c_w=1.3, c_b=0.2)
    for args in ((x,), (x, y)):
        a = spec.kernel(*args, backend="fused", return_layers=True)
        b = spec.kernel(*args, backend="torch", return_layers=True, block_size=4)
        for la, lb in zip(a.layers, b.layers, strict=True):
            # Both within the series tolerance (1e-12 x scale) of the exact value.
            torch.testing.assert_close(la.nngp, lb.nngp, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(la.ntk, lb.ntk, rtol=1e-10, atol=1e-10)


def test_fused_backend_refuses_pairs_its_series_cannot_certify(monkeypatch):
    """ELU's Hermite coefficients decay slowly: highly correlated pairs need the
    2-D quadrature of the torch backend; "auto" recomputes those rows by itself."""
    from dltheory.kernels import blocked

    # "auto" tries the fused loop first above a work threshold; lower it so that a
    # small problem (the 2-D quadrature reference is costly) takes that path too.
    monkeypatch.setattr(blocked, "_FUSED_MIN_WORK", 0)
    x = _inputs(24, 4, seed=4)
    y = x[:10] + 1e-3 * _inputs(10, 4, seed=6)
    spec = MLP(4, "elu", c_w=1.3, c_b=0.2)
    with pytest.raises(ValueError, match="backend must be 'auto' or 'torch'"):
        spec.kernel(x, y, backend="fused")
    auto = spec.kernel(x, y, backend="auto")
    ref = spec.kernel(x, y, backend="torch")
    torch.testing.assert_close(auto.nngp, ref.nngp, rtol=0, atol=1e-10)
    torch.testing.assert_close(auto.ntk, ref.ntk, rtol=0, atol=1e-10)
