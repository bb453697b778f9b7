"""The one-line errors that replace foreign exceptions, silent NaN / inf and hangs found by
the fuzz harness (issue 23), one per fixed case, with the exact message."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory import MLP, activation
from dltheory.bayes_linear import deep_linear_posterior, log_meijer_g, monte_carlo_posterior
from dltheory.criticality import correlation_map, depth_profile, fit_correlation_scale, pair_inputs
from dltheory.entropy import volumetric_bounds
from dltheory.implicit_bias import (
    diagonal_flow,
    diagonal_flow_limit,
    lattice_slow_mass,
    q_function,
    valley_drift_prediction,
)
from dltheory.kernels import rkhs_norm, sphere_spectrum
from dltheory.random_matrices import (
    ProductNormLaw,
    marchenko_pastur_cdf,
    marchenko_pastur_density,
    marchenko_pastur_edges,
    marchenko_pastur_moment,
    sample_marchenko_pastur,
)
from dltheory.regions import density_prediction, pattern_bound, sawtooth_reference, zaslavsky_count
from dltheory.stats import Estimate

F64 = torch.float64
E12 = torch.eye(1, 2, dtype=F64)
BUDGET = "must be small enough for the memory budget of 4 GiB. Got a request of about"

CASES = [
    (lambda: marchenko_pastur_density([math.nan, 1.0], 0.5), ValueError,
     "x must be free of NaN. Got 'NaN entries'."),
    (lambda: marchenko_pastur_cdf(None, 0.5), TypeError,
     "x must be a torch.Tensor or NumPy array. Got 'NoneType'."),
    (lambda: marchenko_pastur_cdf([1 + 1j], 0.5), TypeError,
     "x must be an array of real numbers. Got [(1+1j)]."),
    (lambda: marchenko_pastur_moment(2000, 0.5), ValueError,
     "k must be small enough that the moment fits a float64. Got 2000. Its log is 2127.59; "
     "pass log=True to get it."),
    (lambda: marchenko_pastur_edges(1e30, 1e300), ValueError,
     "sigma2 must be small enough that the upper edge sigma2 (1 + sqrt c)^2 is a float64. "
     "Got 1e+300. With c = 1e+30, rescale the eigenvalues."),
    (lambda: sample_marchenko_pastur(10**12, 8), ValueError,
     f"p * n * n_matrices {BUDGET} 65.5 TiB. Use a smaller size."),
    (lambda: ProductNormLaw((3, 4, 5)).sample(10**12), ValueError,
     f"n_samples {BUDGET} 7.28 TiB. Use a smaller size."),
    (lambda: ProductNormLaw((10**12, 4, 5)).sample(10), ValueError,
     f"dims {BUDGET} 36.4 TiB. Use smaller layers."),
    (lambda: ProductNormLaw((3, 4, 5)).log_cumulant(10**12), ValueError,
     "j must be small enough that the cumulant is a float64. Got 1000000000000. "
     "Use a lower order."),
    (lambda: volumetric_bounds(100000, 1.0, 0.1), ValueError,
     "dim, radius, eps must be such that (1 + 2 radius / eps)^dim fits a float64 (below "
     "1.8e308). Got (100000, 1.0, 0.1). Its log is 304452; pass log=True to get the bounds "
     "as logs."),
    (lambda: volumetric_bounds(2, 1.0, 0.1, -1.0), ValueError,
     "delta must be >= 0 (a density radius). Got -1.0."),
    (lambda: zaslavsky_count(10**12, 10**12), ValueError,
     "n_hidden must be small enough that the exact count has at most 2^24 bits. "
     "Got about 1e+12 bits. Compare logarithms instead."),
    (lambda: pattern_bound(10**12), ValueError,
     "n_neurons must be small enough that the exact count has at most 2^24 bits. "
     "Got about 1.58e+12 bits. Compare logarithms instead."),
    (lambda: sawtooth_reference(5000, torch.tensor([2.0], dtype=F64)), ValueError,
     "x must be in [0, 1] for this many tent steps (outside, the sawtooth doubles each step). "
     "Got entries from -inf after L = 5000 steps. Use a smaller L."),
    (lambda: density_prediction([8], 2, n_quad=10**12), ValueError,
     "n_quad must be an integer in [2, 10000]. Got 1000000000000."),
    (lambda: q_function([1e200]), ValueError,
     "z must be of magnitude <= 1e150 (z^2 must be a float64). Got max |z| 1e+200."),
    (lambda: diagonal_flow_limit(E12, [1.0], 1e30), ValueError,
     "alpha must be in [1e-4, 1e4] for the integrated flow. Got 1e+30. "
     "Use q_alpha_argmin for the limit at other scales."),
    (lambda: diagonal_flow(1e30 * E12, [1.0], 1.0, [1.0]), ValueError,
     "X must be of entries with magnitude <= 1e8 for the integrated flow. "
     "Got 'max |entry| = 1e+30'. Rescale the problem."),
    (lambda: diagonal_flow_limit(E12, [1.0], 1.0, rtol=1e-300), ValueError,
     "rtol must be a float in [1e-14, 1) (float64 resolution). Got 1e-300. Try 1e-11."),
    (lambda: lattice_slow_mass(10**12), ValueError, f"m {BUDGET} 233 TiB. Use a smaller size."),
    (lambda: deep_linear_posterior(1e300 * torch.eye(1, 3, dtype=F64), [1.0], (3,)), ValueError,
     "x must be of entries with magnitude <= 1e+100 (evidence and posterior are computed from "
     "x x^T and y^T (x x^T)^-1 y). Got max |entry| 1e+300. Rescale the data."),
    (lambda: deep_linear_posterior(torch.eye(1, 3, dtype=F64), [1e199], (3,)), ValueError,
     "y must be small enough that y^T (x x^T)^-1 y is a float64. Got max |y| 1e+199. "
     "Rescale y (and sigma2 with it)."),
    (lambda: log_meijer_g(1e30, [0.5]), ValueError,
     "log_y must be such that log G is a float64. Got 1e+30. G underflows: the argument is "
     "too far in the tail."),
    (lambda: monte_carlo_posterior(torch.eye(1, 3, dtype=F64), [1.0], (3,), sigma2=1e-300),
     ValueError, "sigma2 must be in [1e-100, 1e100] for Monte-Carlo weights. Got 1e-300."),
    (lambda: fit_correlation_scale(1e30 * torch.ones(8, 20, dtype=F64), start=1, rho_star=1.0),
     ValueError, "samples must be correlations that decay exponentially toward rho_star. "
     "Got a failed fit (xi_c = nan). Check rho_star and start."),
    (lambda: correlation_map("tanh", 1.0, 0.0, 1.0, 2.0), ValueError,
     "rho must be correlations in [-1, 1]. Got max |rho| 2."),
    (lambda: depth_profile("tanh", 1e30, 0.0, [[1.0, 0.0], [0.0, 1.0]], 3), ValueError,
     "c_w, c_b, x must be such that the first-layer variances stay <= 1e16 for 'tanh'. "
     "Got a variance of 5e+29. Rescale the inputs or the variances."),
    (lambda: depth_profile("tanh", 1.0, 0.0, [[1.0, 0.0], [0.0, 1.0]], 10**12), ValueError,
     "depth must be <= 100000 layers. Got 1000000000000."),
    (lambda: pair_inputs(2.0, 0.5, 1.5, 0.6, 10**12), ValueError,
     f"n_pairs {BUDGET} 2.84e+10 PiB. Use a smaller size."),
    (lambda: Estimate.from_samples(torch.ones(3), dim=5), ValueError,
     "dim must be a dimension of the 1-D samples. Got 5."),
    (lambda: Estimate(1.0, 0.1, 3).zscore(math.nan), ValueError,
     "prediction must be finite (no NaN or inf). Got 'non-finite entries'."),
    (lambda: rkhs_norm([[1.0, 0.0], [0.0, 1.0]], [1e300, 1e300]), ValueError,
     "k_train_train, y must be small enough that the result is finite in float64. "
     "Got 'an overflow'. Rescale the inputs."),
    (lambda: sphere_spectrum(MLP(2, "relu"), 10**12, 5), ValueError,
     f"dim, max_degree, n_quadrature {BUDGET} 8.95 PiB. Use a smaller size."),
    (lambda: activation("tanh").nngp_map(None, 1.0, 1.0), TypeError,
     "k11 must be a torch.Tensor or NumPy array. Got 'NoneType'."),
]  # fmt: skip


@pytest.mark.parametrize("call, kind, text", CASES, ids=range(len(CASES)))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_one_line_error(call, kind, text):
    with pytest.raises(kind) as info:
        call()
    assert str(info.value) == text


def test_requires_grad_inputs_are_accepted():
    x = torch.tensor([0.5, 1.0], dtype=F64, requires_grad=True)
    dens = marchenko_pastur_density(x, 1.0)
    assert abs(dens[1] - math.sqrt(3) / (2 * math.pi)) < 1e-15  # closed form at c = 1, x = 1
    law = ProductNormLaw((4, 3))  # |theta|^2 = chi2_3 / 4
    v = torch.zeros(1, dtype=F64, requires_grad=True)
    import scipy.stats as st

    assert abs(law.log_cdf(v)[0] - st.chi2.cdf(4.0, 3)) < 1e-12


def test_marchenko_pastur_moment_in_log_space():
    # c = 1: the moments are the Catalan numbers C_k = binom(2k, k) / (k + 1)
    for k in (5, 40, 2000):
        catalan = math.lgamma(2 * k + 1) - 2 * math.lgamma(k + 1) - math.log(k + 1)
        assert abs(marchenko_pastur_moment(k, 1.0, log=True) - catalan) < 1e-9 * k
    assert marchenko_pastur_moment(5, 1.0) == 42.0


def test_volumetric_bounds_in_log_space():
    low, high = volumetric_bounds(100000, 1.0, 0.1, log=True)
    assert low == pytest.approx(100000 * math.log(10.0), rel=1e-14)
    assert high == pytest.approx(100000 * math.log(21.0), rel=1e-14)


def test_valley_drift_prediction_matches_the_ode_and_takes_any_time():
    from scipy.integrate import solve_ivp

    x0, eta, steps, noise, b = 0.8, 0.5, 300, 1.0, 2
    k = eta**2 * noise**2 / b

    def rhs(_t, x):
        return -k * x / (2.0 - eta * (1.0 + x * x))

    ref = solve_ivp(rhs, (0, steps), [x0], rtol=1e-12, atol=1e-15).y[0, -1]
    out = valley_drift_prediction(x0, eta, steps, noise=noise, batch_size=b)
    assert out == pytest.approx(ref, rel=1e-8)  # ODE tolerance 1e-12 per unit time
    assert valley_drift_prediction(2.0, 0.1, 10**12) == 0.0  # x decays like exp(-k t / 2)
