"""Quadrature (Mehler series) maps vs an independent nested adaptive quadrature."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from dltheory import Activation, activation
from dltheory.activations import quadrature


def _nested(f, g, k11, k12, k22, kinks=()) -> float:
    """E[f(u) g(v)]: u = a x, v = b x + c y, adaptive quad in y then x (scipy),
    split at the kinks of f (in x) and of g (in y)."""
    a = math.sqrt(k11)
    b = k12 / a
    c = math.sqrt(max(k22 - b * b, 0.0))
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def inner(x):
        if c == 0:
            return g(b * x)
        pts = [p for p in ((k - b * x) / c for k in kinks) if -12 < p < 12] or None
        return integrate.quad(lambda y: g(b * x + c * y) * phi(y), -12, 12, points=pts,
                              epsabs=1e-14, epsrel=1e-13, limit=200)[0]  # fmt: skip

    pts = [k / a for k in kinks if abs(k / a) < 12] or None
    return integrate.quad(lambda x: f(a * x) * inner(x) * phi(x), -12, 12, points=pts,
                          epsabs=1e-14, epsrel=1e-13, limit=200)[0]  # fmt: skip


def _sig(t: float) -> float:
    return 0.5 * (1 + math.tanh(t / 2))


def _cdf(t: float) -> float:
    return 0.5 * math.erfc(-t / math.sqrt(2))


def _pdf(t: float) -> float:
    return math.exp(-t * t / 2) / math.sqrt(2 * math.pi)


# Independent scalar definitions (math module) of each function and its derivative.
REFERENCE = {
    "tanh": (math.tanh, lambda t: 1 - math.tanh(t) ** 2),
    "gelu": (lambda t: t * _cdf(t), lambda t: _cdf(t) + t * _pdf(t)),
    "silu": (lambda t: t * _sig(t), lambda t: _sig(t) * (1 + t * (1 - _sig(t)))),
    "sigmoid": (_sig, lambda t: _sig(t) * (1 - _sig(t))),
    "softplus": (lambda t: max(t, 0) + math.log1p(math.exp(-abs(t))), _sig),
    "elu": (lambda t: t if t > 0 else math.expm1(t), lambda t: 1.0 if t > 0 else math.exp(t)),
}


CASES = [(1.0, 0.3, 2.0), (0.5, -0.45, 0.5), (2.0, 1.9, 2.2), (0.05, 0.01, 3.0)]


@pytest.mark.parametrize("name", ["tanh", "gelu", "silu", "sigmoid", "softplus", "elu"])
def test_quadrature_maps_match_nested_integral(name):
    act = activation(name)
    f, df = REFERENCE[name]
    for k11, k12, k22 in CASES:
        t = [torch.tensor(v, dtype=torch.float64) for v in (k11, k12, k22)]
        # The maps claim |error| <= tol sqrt(E f^2 E g^2) = 1e-12 x O(1) (here E f^2 <= 4);
        # the scipy reference asks for 1e-13 relative: 1e-11 covers both with room.
        expected = _nested(f, f, k11, k12, k22, act.kinks)
        assert float(act.nngp_map(*t)) == pytest.approx(expected, abs=1e-11)
        expected = _nested(df, df, k11, k12, k22, act.kinks)
        assert float(act.ntk_map(*t)) == pytest.approx(expected, abs=1e-11)


def test_user_callable_with_kinks_matches_reference():
    relu6 = Activation.from_callable(lambda x: x.clamp(0, 6), name="relu6", kinks=(0.0, 6.0))
    for k11, k12, k22 in [(4.0, 3.0, 9.0), (30.0, -10.0, 20.0)]:
        t = [torch.tensor(v, dtype=torch.float64) for v in (k11, k12, k22)]
        f = lambda v: min(max(v, 0.0), 6.0)  # noqa: E731
        expected = _nested(f, f, k11, k12, k22, kinks=(0.0, 6.0))
        assert float(relu6.nngp_map(*t)) == pytest.approx(expected, abs=1e-9)


def test_mehler_matches_closed_form_for_erf():
    """The series machinery itself, on an activation with a known answer."""
    erf = activation("erf")
    rng = np.random.default_rng(0)
    k11 = torch.tensor(rng.uniform(0.1, 3, 40))
    k22 = torch.tensor(rng.uniform(0.1, 3, 40))
    rho = torch.tensor(rng.uniform(-0.999, 0.999, 40))
    k12 = rho * (k11 * k22).sqrt()
    got = quadrature.mehler_expectation(erf.fn, erf.fn, k11, k12, k22)
    torch.testing.assert_close(got, erf.nngp_map(k11, k12, k22), rtol=0, atol=1e-11)
    got = quadrature.mehler_expectation(erf.d1, erf.d1, k11, k12, k22)
    torch.testing.assert_close(got, erf.ntk_map(k11, k12, k22), rtol=0, atol=1e-11)


def test_large_variance_pairs_fall_back_to_2d_quadrature():
    """tanh at K = 400 is nearly a sign: the series cannot certify rho = 0.99."""
    tanh, sign = activation("tanh"), activation("sign")
    k = torch.tensor(400.0, dtype=torch.float64)
    k12 = 0.99 * k
    got = float(tanh.nngp_map(k, k12, k))
    # tanh(20 z) ~ sign(z) up to O(1/sqrt(K)): the sign closed form is close.
    assert got == pytest.approx(float(sign.nngp_map(k, k12, k)), abs=0.02)
    expected = _nested(math.tanh, math.tanh, 400.0, 396.0, 400.0)
    assert got == pytest.approx(expected, abs=1e-8)


def test_expectation_1d_matches_closed_moments():
    k = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    got = quadrature.expectation_1d(lambda z: z**4, k)
    torch.testing.assert_close(got, 3 * k**2, rtol=1e-13, atol=0)
    got = quadrature.expectation_1d(torch.cos, k)
    torch.testing.assert_close(got, torch.exp(-k / 2), rtol=1e-13, atol=0)


def test_error_estimate_bounds_the_actual_error():
    tanh = activation("tanh")
    cases = [(1.0, 0.3, 2.0), (0.5, -0.45, 0.5), (400.0, 396.0, 400.0)]
    for k11, k12, k22 in cases:
        t = [torch.tensor(v, dtype=torch.float64) for v in (k11, k12, k22)]
        value = float(tanh.nngp_map(*t))
        error = float(tanh.map_error(*t))
        actual = abs(value - _nested(math.tanh, math.tanh, k11, k12, k22))
        assert 0 < error < 1e-6
        # The estimate must bound the error itself; 2e-13 is the scipy reference's own
        # accuracy (epsrel 1e-13 on O(1) values), not slack for the estimate.
        assert actual <= error + 2e-13
    relu = activation("relu")
    assert float(relu.map_error(*t, kind="ntk")) == 0.0
    loose = dataclasses.replace(tanh, tol=1e-6)  # a shorter series, a larger bound
    pair = [torch.tensor(v, dtype=torch.float64) for v in (1.0, 0.9, 1.0)]
    assert float(tanh.map_error(*pair)) < float(loose.map_error(*pair)) < 1e-6


# Large variances: graded panels, honest error estimates -------------------------------


def _mp_tanh_moments(k: float) -> tuple[float, float]:
    """E[tanh^2], E[tanh'^2] at variance K by mpmath (30 digits), split where tanh turns."""
    import mpmath as mp

    mp.mp.dps = 30
    root = mp.sqrt(k)
    pts = [0] + [mp.mpf(t) / root for t in (1, 10, 50)] + [mp.inf]
    square = 2 * mp.quad(lambda z: mp.tanh(root * z) ** 2 * mp.npdf(z), pts)
    slope = 2 * mp.quad(lambda z: mp.sech(root * z) ** 4 * mp.npdf(z), pts)
    return float(square), float(slope)


@pytest.mark.parametrize("k", [1e4, 1e8, 1e10, 1e12])
def test_tanh_moments_at_large_variance_match_mpmath(k):
    tanh = activation("tanh")
    square, slope = _mp_tanh_moments(k)
    t = torch.tensor(k, dtype=torch.float64)
    # 1-D composite Gauss-Legendre on graded panels: ~1e-15 relative (float64 sums).
    assert float(tanh.second_moment(t)) == pytest.approx(square, rel=1e-13)
    assert float(tanh.derivative_second_moment(t)) == pytest.approx(slope, rel=1e-13)
    # The rho = 1 branch of the 2-D maps is that 1-D integral; its estimate bounds it.
    for kind, value in (("nngp", square), ("ntk", slope)):
        got = float(getattr(tanh, f"{kind}_map")(t, t, t))
        error = float(tanh.map_error(t, t, t, kind=kind))
        assert abs(got - value) <= error + 1e-15 * value


def _nested_split(k11, k12, k22, f):
    """E[f(u) f(v)] by adaptive scipy quadrature, split where f(u) and f(v) turn
    (at u = 0, v = 0: widths 1 / sqrt(K) in the integration variables)."""
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


@pytest.mark.parametrize(("k", "rho"), [(1e8, 0.5), (1e12, 0.5), (1e12, 0.95)])
def test_tanh_maps_at_large_variance_and_their_error_bound(k, rho):
    tanh = activation("tanh")
    t = [torch.tensor(v, dtype=torch.float64) for v in (k, rho * k, k)]
    expected = _nested_split(k, rho * k, k, math.tanh)
    got, error = float(tanh.nngp_map(*t)), float(tanh.map_error(*t))
    assert abs(got - expected) <= error + 2e-13  # 2e-13: the reference's own accuracy
    assert error < 1e-11  # accurate, not only honest
    # K -> inf: tanh(sqrt(K) z) -> sign z, E[sign u sign v] = (2 / pi) arcsin(rho).
    assert got == pytest.approx(2 / math.pi * math.asin(rho), abs=10 / math.sqrt(k))


def test_error_estimate_flags_an_unresolved_oscillating_callable():
    wiggle = Activation.from_callable(lambda z: torch.sin(3 * z), name="wiggle")
    k = torch.tensor(1e6, dtype=torch.float64)
    # E[sin(3u)^2] = (1 - exp(-18 K)) / 2 = 1/2; at K = 1e6 the graded panels cannot
    # resolve the oscillation: whatever the value, the estimate must cover its error.
    got, error = float(wiggle.nngp_map(k, k, k)), float(wiggle.map_error(k, k, k))
    assert abs(got - 0.5) <= error
