"""Closed-form Gaussian maps vs independent high-precision 2-D integrals.

References:
* positively homogeneous activations (relu, leaky_relu, abs, step, sign,
  identity): polar coordinates, where the radial integral is a Gamma function
  and the angular one is done by adaptive quadrature split at the kinks;
* smooth ones (erf, sin, cos): tensor-product Gauss-Hermite of degree 120.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from dltheory import activation
from dltheory.activations.closed_form import closed_pair_row

HOMOGENEOUS = {  # name: (f, f', degree of f)
    "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0) * 1.0, 1),
    "leaky_relu": (lambda u: np.where(u > 0, u, 0.01 * u), lambda u: np.where(u > 0, 1.0, 0.01), 1),
    "abs": (np.abs, np.sign, 1),
    "step": (lambda u: (u > 0) * 1.0, None, 0),
    "sign": (np.sign, None, 0),
    "identity": (lambda u: u, lambda u: np.ones_like(u), 1),
}
SMOOTH = {
    "erf": (special.erf, lambda u: 2 / math.sqrt(math.pi) * np.exp(-u * u)),
    "sin": (np.sin, np.cos),
    "cos": (np.cos, lambda u: -np.sin(u)),
}


def _covariances(rng: np.random.Generator) -> list[tuple[float, float, float]]:
    out = []
    for rho in [-0.999999, -0.7, -0.2, 0.0, 0.3, 0.9, 0.999, 1 - 1e-9]:
        k11, k22 = rng.uniform(0.2, 2.5, size=2)
        out.append((k11, rho * math.sqrt(k11 * k22), k22))
    return out


def _polar(f, g, degree: float, k11: float, k12: float, k22: float) -> float:
    """E[f(u) g(v)] for f, g homogeneous of total degree `degree`."""
    a = math.sqrt(k11)
    b = k12 / a
    c = math.sqrt(max(k22 - b * b, 0.0))

    def angular(phi: float) -> float:
        x, y = math.cos(phi), math.sin(phi)
        return float(f(np.float64(a * x)) * g(np.float64(b * x + c * y)))

    # kinks where u = 0 (phi = +-pi/2) or v = 0
    phi_v = math.atan2(-b, c)
    points = sorted(
        {
            (p + math.pi) % (2 * math.pi) - math.pi
            for p in (math.pi / 2, -math.pi / 2, phi_v, phi_v + math.pi)
        }
    )
    edges = [-math.pi, *points, math.pi]
    ang = sum(
        integrate.quad(angular, lo, hi, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
        for lo, hi in itertools.pairwise(edges)
        if hi > lo
    )
    radial = 2 ** (degree / 2) * math.gamma(1 + degree / 2)  # int r^d r e^{-r^2/2} dr
    return ang * radial / (2 * math.pi)


def _hermite(f, g, k11, k12, k22, deg=120) -> float:
    z, w = np.polynomial.hermite_e.hermegauss(deg)
    w = w / math.sqrt(2 * math.pi)
    a = math.sqrt(k11)
    b = k12 / a
    c = math.sqrt(max(k22 - b * b, 0.0))
    u = a * z[:, None]
    v = b * z[:, None] + c * z[None, :]
    return float((w[:, None] * w[None, :] * f(u) * g(v)).sum())


def _maps(name, k11, k12, k22):
    act = activation(name)
    t = [torch.tensor(v, dtype=torch.float64) for v in (k11, k12, k22)]
    return float(act.nngp_map(*t)), float(act.ntk_map(*t))


@pytest.mark.parametrize("name", sorted(HOMOGENEOUS))
def test_homogeneous_closed_forms_match_polar_quadrature(name):
    f, df, degree = HOMOGENEOUS[name]
    for k11, k12, k22 in _covariances(np.random.default_rng(1)):
        nngp, ntk = _maps(name, k11, k12, k22)
        assert nngp == pytest.approx(_polar(f, f, 2 * degree, k11, k12, k22), abs=1e-9)
        expected_ntk = 0.0 if df is None else _polar(df, df, 0, k11, k12, k22)
        assert ntk == pytest.approx(expected_ntk, abs=1e-9)


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_smooth_closed_forms_match_hermite_quadrature(name):
    f, df = SMOOTH[name]
    for k11, k12, k22 in _covariances(np.random.default_rng(2)):
        nngp, ntk = _maps(name, k11, k12, k22)
        assert nngp == pytest.approx(_hermite(f, f, k11, k12, k22), abs=1e-9)
        assert ntk == pytest.approx(_hermite(df, df, k11, k12, k22), abs=1e-9)


def test_relu_diagonal_is_exact_half_variance():
    relu = activation("relu")
    k = torch.tensor([0.3, 1.0, 7.5], dtype=torch.float64)
    # Same input twice, with k12 a few ulps off k11 as a matmul may produce.
    k12 = k * (1 - 4e-16)
    assert torch.equal(relu.ntk_map(k, k12, k), torch.full_like(k, 0.5))
    torch.testing.assert_close(relu.nngp_map(k, k12, k), k / 2, rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    "name", ["relu", "leaky_relu", "abs", "step", "sign", "erf", "sin", "cos", "identity"]
)
def test_scalar_pair_twin_matches_torch_closed_form(name):
    act = activation(name)
    assert act.pair_code  # numba is a dependency: the fused backend needs the twin
    rng = np.random.default_rng(3)
    for k11, k12, k22 in [*_covariances(rng), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]:
        nngp, ntk = _maps(name, k11, k12, k22)
        k12_row, k22_row, theta = np.array([k12]), np.array([k22]), np.ones(1)
        closed_pair_row(act.pair_code, act.pair_param, k11, k12_row, k22_row, theta)
        a, b = k12_row[0], theta[0]
        assert a == pytest.approx(nngp, rel=1e-13, abs=1e-15)
        assert b == pytest.approx(ntk, rel=1e-13, abs=1e-15)
