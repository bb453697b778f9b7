"""log_meijer_g against closed forms (m = 1, Bessel K for m = 2) and mpmath.meijerg."""

import math

import mpmath
import pytest
import scipy.special as sp

from dltheory.bayes_linear.meijer import log_gamma_ratio, log_meijer_g, log_meijer_g_normalised


@pytest.mark.parametrize("x", [1e-6, 0.01, 0.7, 3.0, 50.0, 1e4])
@pytest.mark.parametrize("b", [(0.0, 0.3), (0.0, 2.5), (1.5, -0.2), (0.0, 40.0)])
def test_bessel_form_to_1e12(x, b):
    # G^{2,0}_{0,2}(x | b1, b2) = 2 x^{(b1+b2)/2} K_{b1-b2}(2 sqrt x) (DLMF 10.32.10);
    # kve = K e^{z} avoids underflow. 1e-12 in log G is a relative 1e-12 in G.
    z = 2 * math.sqrt(x)
    ref = math.log(2) + 0.5 * (b[0] + b[1]) * math.log(x) + math.log(sp.kve(b[0] - b[1], z)) - z
    assert abs(log_meijer_g(math.log(x), b) - ref) < 1e-12


def test_one_parameter_is_power_times_exponential():
    assert abs(log_meijer_g(math.log(5.0), [1.25]) - (1.25 * math.log(5.0) - 5.0)) < 1e-14


@pytest.mark.parametrize(
    ("x", "b"),
    [(2.0, (0.0, 1.2, 2.7)), (7.0, (0.0, 0.5, 1.0, 3.5)), (0.3, (0.0, 2.0, 2.0, 2.0))],
)
def test_against_mpmath_meijerg(x, b):
    with mpmath.workdps(30):
        ref = float(mpmath.log(mpmath.meijerg([[], []], [list(b), []], x)))
    assert abs(log_meijer_g(math.log(x), b) - ref) < 1e-12


@pytest.mark.parametrize(("nu", "x"), [(200.0, 4e4), (600.0, 1e5)])
def test_large_order_bessel_keeps_digits(nu, x):
    # Large parameters (K_nu ~ 1e114): scipy's kve (AMOS uniform expansions) as reference.
    z = 2 * math.sqrt(x)
    ref = math.log(2) + 0.5 * nu * math.log(x) + math.log(sp.kve(nu, z)) - z
    # log G ~ 3e3: float64 resolves it to ~1e-12 absolute; 1e-11 leaves a factor 3 over that.
    assert abs(log_meijer_g(math.log(x), [0.0, nu]) - ref) < 1e-11 * max(1.0, abs(ref) / 1e3)


def test_mellin_moment_identity_for_gamma_products():
    # E[G] for G = g1 g2, g_j ~ Gamma(k_j): int x G^{2,0}(x | k-1) dx / prod Gamma = k1 k2.
    k1, k2 = 1.5, 2.25
    import scipy.integrate as si

    def density(x):
        return math.exp(
            log_meijer_g(math.log(x), [k1 - 1, k2 - 1]) - sp.gammaln(k1) - sp.gammaln(k2)
        )

    total = si.quad(density, 0, math.inf, epsabs=1e-12, limit=200)[0]
    mean = si.quad(lambda x: x * density(x), 0, math.inf, epsabs=1e-12, limit=200)[0]
    assert abs(total - 1) < 1e-8 and abs(mean - k1 * k2) < 1e-7


def test_errors():
    with pytest.raises(ValueError, match="b must be a non-empty sequence"):
        log_meijer_g(0.0, [])
    with pytest.raises(ValueError, match="log_x must be finite"):
        log_meijer_g(math.inf, [0.0, 1.0])
    with pytest.raises(ValueError, match="b must be finite"):
        log_meijer_g(0.0, [0.0, math.nan])


@pytest.mark.parametrize("a", [3.0, 5e3, 5e9, 5e13])
@pytest.mark.parametrize("delta", [-1.5, 0.75, 3.25])
def test_log_gamma_ratio_against_mpmath(a, delta):
    # deltas exact in binary so that mpmath sees the same a + delta; 50-digit reference.
    with mpmath.workdps(50):
        a_mp, d_mp = mpmath.mpf(a), mpmath.mpf(delta)
        ref = mpmath.loggamma(a_mp + d_mp) - mpmath.loggamma(a_mp) - d_mp * mpmath.log(a_mp)
    assert abs(log_gamma_ratio(a, delta) - float(ref)) < 1e-15 * max(1.0, abs(float(ref))) + 1e-17


def test_normalised_form_matches_the_plain_one():
    # G(y k | 0, k + s) k^{-s} / Gamma(k) computed both ways at moderate k.
    k, s, log_y = 40.0, -2.5, 0.4
    plain = log_meijer_g(log_y + math.log(k), [0.0, k + s]) - sp.gammaln(k) - s * math.log(k)
    assert abs(log_meijer_g_normalised(log_y, [0.0, k + s], [1.0, k]) - plain) < 1e-12
    with pytest.raises(ValueError, match="a must be a sequence of 2 normalisers"):
        log_meijer_g_normalised(0.0, [0.0, 1.0], [1.0])
