"""Critical points, universality classes and the K* = 0 power law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import erf as np_erf
from scipy.special import expit

from dltheory import activation
from dltheory.criticality import CriticalPoint, chi_perp, critical_point, k_star_zero_decay


def _expect(f, k: float) -> float:
    """Independent reference: adaptive quadrature of E[f(z)], z ~ N(0, k)."""
    r = math.sqrt(k)
    value, _ = quad(
        lambda x: f(r * x) * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
        -40,
        40,
        epsabs=1e-14,
        epsrel=1e-12,
        limit=400,
        points=[0.0],
    )
    return value


def _gelu(z):
    return z * 0.5 * (1 + np_erf(z / math.sqrt(2)))


def _gelu_d1(z):
    return 0.5 * (1 + np_erf(z / math.sqrt(2))) + z * math.exp(-0.5 * z * z) / math.sqrt(
        2 * math.pi
    )


def _gelu_d2(z):
    return (2 - z * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _silu(z):
    return z * expit(z)


def _silu_d1(z):
    s = expit(z)
    return s * (1 + z * (1 - s))


def _silu_d2(z):
    s = expit(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


@pytest.mark.parametrize(("name", "c_w"), [("relu", 2.0), ("identity", 1.0), ("abs", 1.0)])
def test_scale_invariant(name: str, c_w: float) -> None:
    cp = critical_point(name)
    assert cp.universality_class == "scale_invariant"
    assert (cp.c_b, cp.k_star) == (0.0, None)
    assert cp.c_w == pytest.approx(c_w, rel=1e-14)


@pytest.mark.parametrize("slope", [0.0, 0.2, 0.5])
def test_leaky_relu_he_init(slope: float) -> None:
    cp = critical_point(activation("leaky_relu", slope=slope))
    assert cp.universality_class == "scale_invariant"
    assert cp.c_w == pytest.approx(2 / (1 + slope**2), rel=1e-14)


@pytest.mark.parametrize(("name", "c_w"), [("tanh", 1.0), ("erf", math.pi / 4), ("sin", 1.0)])
def test_k_star_zero_class(name: str, c_w: float) -> None:
    cp = critical_point(name)
    assert cp.universality_class == "k_star_zero"
    assert (cp.c_b, cp.k_star) == (0.0, 0.0)
    assert cp.c_w == pytest.approx(c_w, rel=1e-14)  # 1 / s'(0)^2


def _richardson_a1(second_moment, c_w: float) -> float:
    # r(K) = (C_w E_K[s^2] - K) / K^2 = a_1 + O(K): extrapolate K -> 0.
    def r(k: float) -> float:
        return (c_w * second_moment(k) - k) / k**2

    return 2 * r(1e-3) - r(2e-3)


@pytest.mark.parametrize(
    ("name", "a_1", "c_w", "second_moment"),
    [
        # tanh z = z - z^3/3: a_1 = 6 (-1/3) = -2 (the notes' K ~ 1/(2l)).
        ("tanh", -2.0, 1.0, lambda k: _expect(lambda z: math.tanh(z) ** 2, k)),
        # Williams: E[erf^2] = (2/pi) arcsin(2K/(1+2K)); C_w = pi/4.
        ("erf", -2.0, math.pi / 4, lambda k: (2 / math.pi) * math.asin(2 * k / (1 + 2 * k))),
        # E[sin^2] = (1 - e^{-2K}) / 2 = K - K^2 + ...
        ("sin", -1.0, 1.0, lambda k: (1 - math.exp(-2 * k)) / 2),
    ],
)
def test_k_star_zero_decay(name: str, a_1: float, c_w: float, second_moment) -> None:
    assert k_star_zero_decay(name) == pytest.approx(a_1, abs=1e-12)
    assert _richardson_a1(second_moment, c_w) == pytest.approx(a_1, abs=1e-4)


def test_tanh_variance_decays_as_one_over_two_l() -> None:
    act = activation("tanh")
    k = torch.tensor(1.0, dtype=torch.float64)
    n_layers = 10_000
    for _ in range(n_layers):
        k = act.second_moment(k)  # C_b = 0, C_w = 1
    assert n_layers * float(k) == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    ("name", "fns"),
    [("gelu", (_gelu, _gelu_d1, _gelu_d2)), ("silu", (_silu, _silu_d1, _silu_d2))],
)
def test_nonzero_k_star_solves_three_equations(name: str, fns) -> None:
    s, d1, d2 = fns
    cp = critical_point(name)
    assert cp.universality_class == "nonzero_k_star"
    c_b, c_w, k = cp.c_b, cp.c_w, cp.k_star
    assert k > 0 and c_b >= 0
    fixed = c_b + c_w * _expect(lambda z: s(z) ** 2, k) - k
    perp = c_w * _expect(lambda z: d1(z) ** 2, k) - 1
    par = c_w * _expect(lambda z: d1(z) ** 2 + s(z) * d2(z), k) - 1
    assert max(abs(fixed), abs(perp), abs(par)) < 1e-10


def test_published_digits() -> None:
    # Roberts, Yaida & Hanin (2022), ch. 5.
    gelu = critical_point("gelu")
    assert gelu.c_b == pytest.approx(0.17292239, abs=1e-8)
    assert gelu.c_w == pytest.approx(1.98305826, abs=1e-8)
    silu = critical_point("swish")
    assert silu.c_w == pytest.approx(1.98800468, abs=1e-8)
    # The brief quoted 0.055514317; the same digits with the decimal point
    # one place to the right solve the three equations (see the test above).
    assert silu.c_b == pytest.approx(0.55514317, abs=1e-8)


@pytest.mark.parametrize("name", ["sigmoid", "softplus"])
def test_no_critical_point(name: str) -> None:
    cp = critical_point(name)
    assert cp.universality_class == "none"
    assert (cp.c_b, cp.c_w, cp.k_star) == (None, None, None)
    assert "s(0)" in cp.reason and "no solution" in cp.reason


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"activation must be one of"):
        critical_point("gleu")
    with pytest.raises(ValueError, match=r"activation must be zero at the origin"):
        k_star_zero_decay("sigmoid")
    with pytest.raises(ValueError, match=r"universality_class must be one of"):
        CriticalPoint(c_b=0.0, c_w=1.0, k_star=0.0, universality_class="bad", reason="")  # type: ignore[arg-type]


def test_numpy_reference_is_sane() -> None:
    # The reference quadrature reproduces E[z^2] = K.
    assert _expect(np.square, 2.5) == pytest.approx(2.5, rel=1e-13)


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_nonzero_k_star_is_half_stable(name: str) -> None:
    # The map touches the diagonal at K* (chi_parallel = 1): g = K' - K has the
    # same sign on both sides, so K* attracts from one side only.
    cp = critical_point(name)
    act = activation(name)
    g = [
        cp.c_b + cp.c_w * float(act.second_moment(torch.tensor(k, dtype=torch.float64))) - k
        for k in (cp.k_star - 0.05, cp.k_star + 0.05)
    ]
    assert min(abs(v) for v in g) > 1e-10
    assert g[0] * g[1] > 0


def test_k_star_zero_decay_of_identity_and_kinked_activations():
    assert k_star_zero_decay("identity") == 0.0  # C_w E_K[z^2] = K exactly
    with pytest.raises(ValueError, match="activation must be smooth at the origin"):
        k_star_zero_decay("leaky_relu")


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu_is_k_star_zero_with_one_sided_slopes(alpha):
    cp = critical_point(activation("elu", alpha=alpha))
    assert cp.universality_class == "k_star_zero"
    assert cp.c_w == pytest.approx(2 / (1 + alpha**2), rel=1e-15)  # slopes 1 and alpha at 0
    # chi_perp(K) = C_w E[s'^2] -> C_w (1 + alpha^2) / 2 = 1 as K -> 0 (error O(sqrt K)).
    assert float(chi_perp(activation("elu", alpha=alpha), cp.c_w, 1e-10)) == pytest.approx(
        1.0, abs=1e-4
    )


@pytest.mark.parametrize("name", ["step", "sign"])
def test_jump_activations_have_no_critical_point_with_the_reason(name):
    cp = critical_point(name)
    assert cp.universality_class == "none" and "jumps at 0" in cp.reason
