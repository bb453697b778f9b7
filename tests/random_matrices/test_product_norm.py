"""Product-norm law: exact log-moments vs quadrature and samples, exact CDF, KS, log-normal."""

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st

from dltheory.finite import Estimate
from dltheory.random_matrices import ProductNormLaw


def test_one_layer_cdf_is_chi_square():
    law = ProductNormLaw((5, 3), sigma2=2.0)  # |theta|^2 = 2 chi2_3 / 5
    v = np.linspace(-6, 3, 10)
    assert np.abs(law.log_cdf(v) - st.chi2.cdf(5 * np.exp(v) / 2, 3)).max() < 1e-12


def test_log_moments_against_quadrature():
    # E log chi2_3 and Var log chi2_3 by quadrature against the chi-square density; two layers add.
    mean3 = si.quad(lambda t: math.log(t) * st.chi2.pdf(t, 3), 0, np.inf, epsabs=1e-13)[0]
    sq3 = si.quad(lambda t: math.log(t) ** 2 * st.chi2.pdf(t, 3), 0, np.inf, epsabs=1e-13)[0]
    law = ProductNormLaw((4, 3, 3))
    assert law.log_mean == pytest.approx(2 * mean3 - math.log(4) - math.log(3), abs=1e-10)
    assert law.log_variance == pytest.approx(2 * (sq3 - mean3**2), abs=1e-9)


@pytest.mark.parametrize("dims", [(20, 30, 10, 40), (8, 8, 8, 8, 8, 8)])
def test_matrix_samples_match_exact_moments_and_cdf(dims):
    law = ProductNormLaw(dims, sigma2=1.5)
    s = law.sample(4000, seed=7)
    mean = Estimate.from_samples(s)
    var = Estimate.from_samples((s - law.log_mean) ** 2)
    assert abs(float(mean.zscore(law.log_mean))) < 4
    assert abs(float(var.zscore(law.log_variance))) < 4
    # Stated threshold: KS p-value > 0.01 against the exact law, and against exact chi2 draws.
    assert st.kstest(s.numpy(), law.log_cdf).pvalue > 0.01
    assert st.ks_2samp(s.numpy(), law.sample(4000, seed=8, method="chi2").numpy()).pvalue > 0.01


def test_lognormal_leading_order():
    # log|theta|^2 ~ N(-L/n, 2L/n) to leading order: psi(n/2) - log(n/2) = -1/n - 1/(3n^2) + ...
    # and psi'(n/2) = 2/n + 2/n^2 + ..., so the exact values differ by O(L/n^2).
    for n in (50, 500, 5000):
        law = ProductNormLaw((n,) * 7)  # L = 6
        mu, var = law.lognormal()
        assert (mu, var) == pytest.approx((-6 / n, 12 / n))
        assert abs(law.log_mean - mu) < 6 / (3 * n**2) * 1.1
        assert abs(law.log_variance - var) < 12 / n**2 * 1.1
    # The notes' slip: the mean of log|theta|^2 is -L/n, not -L/(2n) (that is log|theta|'s).
    assert ProductNormLaw((10**4,) * 11).log_mean * 10**4 / 10 == pytest.approx(-1, rel=1e-3)


def test_cumulants_and_depth():
    law = ProductNormLaw((6, 4, 9))
    assert law.depth == 2
    assert law.log_cumulant(1) == law.log_mean and law.log_cumulant(2) == law.log_variance
    assert law.log_cumulant(3) < 0  # log chi-square is left-skewed


def test_errors():
    with pytest.raises(ValueError, match=r"dims must be \(n_0, n_1, \.\.\., n_L\) with L >= 1"):
        ProductNormLaw((5,))
    with pytest.raises(ValueError, match=r"dims must be an integer >= 1"):
        ProductNormLaw((5, 0))
    with pytest.raises(ValueError, match="sigma2 must be > 0"):
        ProductNormLaw((5, 5), sigma2=0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        ProductNormLaw((5, 5)).sample(3, method="exact")
    with pytest.raises(ValueError, match="v must be finite"):
        ProductNormLaw((5, 5)).log_cdf(np.inf)
