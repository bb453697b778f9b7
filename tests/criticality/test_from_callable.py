"""Every criticality function on ``Activation.from_callable`` activations (defect: the
autograd d2 lost its graph), against the registry's closed forms.

Tolerances: the callables go through quadrature (absolute error ~1e-12 on O(1)
moments, DEFAULT_TOL), the registry entries through closed forms; root finders
(brentq, rtol 1e-15) turn a 1e-12 residual error into ~1e-11 relative in K*.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dltheory import Activation, activation
from dltheory.criticality import (
    analyze,
    chi_parallel,
    chi_perp,
    critical_init_,
    critical_point,
    depth_scales,
    fixed_points,
    k_star_zero_decay,
    phase_diagram,
)

K = [0.05, 0.7, 3.0]
QUAD = 1e-10  # quadrature (1e-12) through a root finder or a ratio: well below 1e-10


def _pairs():
    return [
        ("smooth", Activation.from_callable(torch.erf, name="my_erf"), activation("erf")),
        ("kinked", Activation.from_callable(torch.relu, name="my_relu", kinks=(0.0,)),
         activation("relu")),
        ("kinked", Activation.from_callable(lambda z: torch.where(z > 0, z, 0.3 * z),
                                            name="my_leaky", kinks=(0.0,)),
         activation("leaky_relu", slope=0.3)),
    ]  # fmt: skip


@pytest.mark.parametrize(("kind", "custom", "closed"), _pairs())
def test_susceptibilities_and_fixed_points_match_closed_forms(kind, custom, closed):
    for k in K:
        for fn in (chi_parallel, chi_perp):
            assert float(fn(custom, 1.5, k)) == pytest.approx(float(fn(closed, 1.5, k)), abs=QUAD)
    got = [p.k_star for p in fixed_points(custom, 1.5, 0.1)]
    want = [p.k_star for p in fixed_points(closed, 1.5, 0.1)]
    assert got == pytest.approx(want, rel=QUAD)


@pytest.mark.parametrize(("kind", "custom", "closed"), _pairs())
def test_critical_point_and_depth_scales_match_closed_forms(kind, custom, closed):
    a, b = critical_point(custom), critical_point(closed)
    assert a.universality_class == b.universality_class
    assert (a.c_w, a.c_b) == pytest.approx((b.c_w, b.c_b), rel=QUAD)
    for c_w, c_b in ((0.8, 0.2), (1.5, 0.3)):
        s, t = depth_scales(custom, c_w, c_b), depth_scales(closed, c_w, c_b)
        assert s.phase == t.phase
        assert (s.k_star, s.chi_perp, s.rho_star, s.xi_c) == pytest.approx(
            (t.k_star, t.chi_perp, t.rho_star, t.xi_c),
            rel=1e-8,  # rho* by brentq on quadrature
        )


def test_phase_diagram_critical_init_and_analyze_on_a_callable():
    custom = Activation.from_callable(torch.erf, name="my_erf")
    d, e = phase_diagram(custom, [0.5, 1.5], [0.0]), phase_diagram("erf", [0.5, 1.5], [0.0])
    assert d.phase.tolist() == e.phase.tolist()
    assert float(d.boundary_c_w[0]) == pytest.approx(float(e.boundary_c_w[0]), rel=1e-9)
    assert float(d.boundary_c_w[0]) == pytest.approx(math.pi / 4, rel=1e-9)  # 1 / erf'(0)^2
    net = nn.Sequential(nn.Linear(400, 400), nn.Linear(400, 400))
    critical_init_(net, activation=custom, seed=0)
    var = float(net[0].weight.detach().double().square().mean()) * 400
    assert var == pytest.approx(math.pi / 4, rel=5 * math.sqrt(2 / 160_000))  # 5 s.e.
    a = analyze(custom, depth=3, width=16, n_networks=2)
    assert a.c_w == pytest.approx(math.pi / 4, rel=1e-12) and a.verdict.startswith("critical")


def test_polynomial_callable_against_its_exact_moments():
    # s = z - z^3 / 3: E[s^2] = K - 2 K^2 + (5/3) K^3, chi_parallel = C_w (1 - 4K + 5K^2),
    # chi_perp = C_w E[(1 - z^2)^2] = C_w (1 - 2K + 3K^2), a_1 = 6 s_3 / s_1 = -2.
    poly = Activation.from_callable(lambda z: z - z**3 / 3, name="poly")
    for k in K:
        assert float(chi_parallel(poly, 1.0, k)) == pytest.approx(1 - 4 * k + 5 * k * k, abs=QUAD)
        assert float(chi_perp(poly, 1.0, k)) == pytest.approx(1 - 2 * k + 3 * k * k, abs=QUAD)
    assert k_star_zero_decay(poly) == pytest.approx(-2.0, abs=1e-12)
    cp = critical_point(poly)
    assert (cp.universality_class, cp.c_w, cp.c_b) == ("k_star_zero", 1.0, 0.0)
    # At C_w = 1, C_b = 0: K* = 0 (marginal) and K* = 6/5 where -2K^2 + (5/3)K^3 = 0.
    points = fixed_points(poly, 1.0, 0.0)
    assert [p.k_star for p in points] == pytest.approx([0.0, 1.2], rel=QUAD, abs=1e-14)
    assert points[1].chi_parallel == pytest.approx(1 - 4.8 + 7.2, rel=QUAD)


def test_critical_point_of_a_square_never_raises():
    cp = critical_point(lambda z: z * z)
    assert cp.universality_class == "none" and cp.c_w is None
    assert "s'(0) = 0" in cp.reason
