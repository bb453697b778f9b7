"""Marchenko-Pastur: closed forms against quadrature, exact finite-n moments, KS at fixed seeds."""

import math

import numpy as np
import pytest
import scipy.integrate as si
import torch

from dltheory.random_matrices import (
    marchenko_pastur_cdf,
    marchenko_pastur_density,
    marchenko_pastur_edges,
    marchenko_pastur_ks,
    marchenko_pastur_moment,
    sample_marchenko_pastur,
)


def _quad(c, sigma2, upper, power=0):
    # density = sqrt(b - t) / (2 pi sigma2 c t) * (t - a)^{1/2}: QUADPACK's algebraic weight
    # handles the square-root edge at a exactly.
    # At c = 1 (a = 0) the edge is t^{-1/2} instead.
    a, b = marchenko_pastur_edges(c, sigma2)
    hard = a == 0.0
    return si.quad(
        lambda t: (
            t ** (power - (0.0 if hard else 1.0))
            * math.sqrt(max(b - t, 0))
            / (2 * math.pi * sigma2 * c)
        ),
        a,
        upper,
        weight="alg",
        wvar=(-0.5 if hard else 0.5, 0.0),
        epsabs=1e-14,
        epsrel=1e-13,
    )[0]


@pytest.mark.parametrize(("c", "sigma2"), [(0.3, 1.0), (1.0, 2.0), (2.5, 0.5)])
def test_cdf_and_mass_against_quadrature(c, sigma2):
    a, b = marchenko_pastur_edges(c, sigma2)
    atom = max(0.0, 1 - 1 / c)
    assert _quad(c, sigma2, b) == pytest.approx(min(1.0, 1 / c), abs=1e-10)
    for t in np.linspace(a, b, 7)[1:-1]:
        assert float(marchenko_pastur_cdf(t, c, sigma2)) == pytest.approx(
            atom + _quad(c, sigma2, t), abs=1e-10
        )
    assert float(marchenko_pastur_cdf(-1.0, c, sigma2)) == 0.0
    assert float(marchenko_pastur_cdf(b + 1, c, sigma2)) == 1.0
    assert float(marchenko_pastur_density(b + 1, c, sigma2)) == 0.0


@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_moments_against_quadrature(c, k):
    upper = marchenko_pastur_edges(c, 1.5)[1]
    assert marchenko_pastur_moment(k, c, 1.5) == pytest.approx(_quad(c, 1.5, upper, k), rel=1e-9)


@pytest.mark.parametrize(("p", "n"), [(20, 40), (30, 15)])
def test_exact_finite_n_second_moment(p, n):
    # E (1/P) tr S^2 = 1 + c + 1/n exactly for Wishart (E chi2_n^2 = n^2 + 2n diagonals,
    # E (X X^T)_ij^2 = n off the diagonal): MP's 1 + c plus the 1/n correction.
    ev = sample_marchenko_pastur(p, n, n_matrices=400, seed=3).reshape(400, p)
    per_matrix = (ev**2).mean(1)
    se = float(per_matrix.std()) / math.sqrt(400)
    assert abs(float(per_matrix.mean()) - (1 + p / n + 1 / n)) < 4 * se
    assert marchenko_pastur_moment(2, p / n) == pytest.approx(1 + p / n, rel=1e-15)


def _law_distance(c, c2):
    """sup_t |F_c(t) - F_c2(t)| of two MP laws (sigma2 = 1), by quadrature on a grid."""
    top = marchenko_pastur_edges(max(c, c2), 1.0)[1]

    def cdf(t, c):
        a = marchenko_pastur_edges(c, 1.0)[0]
        return max(0.0, 1 - 1 / c) + (_quad(c, 1.0, min(t, top)) if t > a else 0.0)

    return max(abs(cdf(t, c) - cdf(t, c2)) for t in np.linspace(0.0, top, 301)[1:])


@pytest.mark.parametrize(("p", "n", "seed"), [(200, 400, 0), (400, 200, 1)])
def test_ks_statistic_is_at_the_rigidity_scale_and_sees_a_5_percent_error(p, n, seed):
    # The eigenvalues of a Wishart matrix are rigid: each sits within about 1/min(p, n)
    # (up to logarithms) of its classical location (Pillai & Yin 2014), so the empirical
    # CDF of 10 pooled matrices is far closer to MP than N iid draws would be and the
    # iid KS p-value is ~1 whatever the ratio (it accepts a ratio 10% off). The check is
    # therefore on the statistic D: below 2 / min(p, n) for the true ratio, above it for a
    # ratio 5% off, whose law lies further than that from MP (quadrature, independent of
    # the CDF under test).
    c, m = p / n, min(p, n)
    ev = sample_marchenko_pastur(p, n, n_matrices=10, seed=seed)
    good = marchenko_pastur_ks(ev, c)
    assert good.statistic < 2 / m
    assert good.statistic < 0.5 * 0.83 / math.sqrt(m * 10)  # iid median D: 0.83 / sqrt(N)
    assert good.atom_fraction == pytest.approx(max(0.0, 1 - n / p), abs=1e-15)
    assert _law_distance(c, 1.05 * c) > 2 / m
    assert marchenko_pastur_ks(ev, 1.05 * c).statistic > 2 / m
    assert marchenko_pastur_ks(ev, 1.3 * p / n).pvalue < 1e-6


def test_sigma2_scales_the_spectrum():
    ev = sample_marchenko_pastur(50, 100, sigma2=3.0, seed=2)
    # sigma2 scales every eigenvalue: the same statistic as ev / 3 against sigma2 = 1
    scaled = marchenko_pastur_ks(ev / 3.0, 0.5)
    assert marchenko_pastur_ks(ev, 0.5, sigma2=3.0).statistic == pytest.approx(
        scaled.statistic, rel=1e-9
    )
    assert marchenko_pastur_moment(3, 0.5, 3.0) == pytest.approx(
        27 * marchenko_pastur_moment(3, 0.5)
    )


def test_errors():
    with pytest.raises(ValueError, match="c must be > 0"):
        marchenko_pastur_density(1.0, 0.0)
    with pytest.raises(ValueError, match="sigma2 must be > 0"):
        marchenko_pastur_cdf(1.0, 0.5, -1.0)
    with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
        marchenko_pastur_ks(torch.tensor([1.0, -0.5]), 0.5)
    with pytest.raises(ValueError, match="p must be an integer >= 1"):
        sample_marchenko_pastur(0, 3)
    with pytest.raises(ValueError, match="k must be an integer >= 0"):
        marchenko_pastur_moment(-1, 0.5)
