"""Tests that catch wrong code in the Cholesky, the GP and the kernel ridge solvers.

Each test here was written against mutants that survived the rest of the suite
(``benchmarks/mutation_testing.py``): a changed constant, operator or argument
that still gave passing tests. They check public results against independent
computations (dense NumPy / SciPy solves, closed forms, scikit-learn), never
against numbers printed by the code itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from dltheory import MLP
from dltheory.kernels import cholesky, fit_exact, fit_falkon, fit_pcg
from dltheory.kernels.cholesky import as_fortran_copy, cholesky_in_place, jitter_schedule

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------ cholesky.py
def test_jitter_schedule_is_zero_then_tenfold_from_1e_12_of_the_scale():
    # Closed form of the documented schedule: 0, then scale * 10^(k - 12), k = 0, 1, ...
    got = jitter_schedule(3.0, 5)
    np.testing.assert_allclose(got, [0.0, 3e-12, 3e-11, 3e-10, 3e-9], rtol=1e-14, atol=0)
    assert jitter_schedule(3.0, 1) == [0.0]  # max_tries = 1 is allowed: no jitter at all
    with pytest.raises(ValueError, match=r"max_tries must be an integer >= 1\. Got 0"):
        jitter_schedule(3.0, 0)


def test_default_tries_stop_at_a_jitter_of_1e_6_of_the_scale():
    # K has eigenvalues ~2 and -eps_k with eps_k = 3e-6 * 1 / 2 (det = -3e-6): a jitter
    # 1e-6 (the 8th and last default try, 1e-12 ... 1e-6) is not enough, 1e-5 (a 9th) is.
    k = np.array([[1.0, 1.0], [1.0, 1.0 - 3e-6]])
    smallest = np.linalg.eigvalsh(k)[0]
    assert -1e-5 < smallest < -1e-6
    scale = float(np.mean(np.diagonal(k)))
    with pytest.raises(ValueError, match=r"jitter of 1\.0e-06"):
        cholesky_in_place(np.asfortranarray(k))
    c = cholesky_in_place(np.asfortranarray(k), max_tries=9)
    assert c.jitter == pytest.approx(1e-5 * scale, rel=1e-12)


def test_zero_kernel_takes_its_jitter_scale_from_1():
    # mean |diag K| = 0: the documented scale is 1, so the first nonzero jitter 1e-12 works.
    c = cholesky_in_place(np.zeros((3, 3), order="F"))
    assert c.jitter == 1e-12
    np.testing.assert_allclose(np.diagonal(c.buffer), np.sqrt(1e-12), rtol=1e-14)


def test_error_names_the_smallest_eigenvalue_of_k_plus_the_shift():
    k = np.diag([1.0, 2.0, -3.0])
    with pytest.raises(ValueError, match=r"smallest eigenvalue -2\.500e\+00"):
        cholesky_in_place(np.asfortranarray(k), shift=0.5, max_tries=2)


@pytest.mark.parametrize(
    "bad",
    [
        np.ones(4),  # 1-D
        np.ones((3, 4), order="F"),  # not square
        np.ascontiguousarray(np.eye(3) + 0.1),  # C order
        np.asfortranarray(np.eye(3), dtype=np.float32),
    ],
    ids=["1d", "non-square", "c-order", "float32"],
)
def test_buffer_must_be_a_square_fortran_float64_array(bad):
    with pytest.raises(ValueError, match="a must be a square Fortran-ordered float64 array"):
        cholesky_in_place(bad)


@pytest.mark.parametrize("fail_panel", [1, 9, 10])
def test_failure_in_a_late_panel_restores_every_earlier_panel(monkeypatch, fail_panel):
    # Panels of 4 columns; rows/columns 4 * fail_panel + (0, 1) are duplicates with the
    # second diagonal lowered by 1e-8 (eigenvalue ~ -5e-9), so K is indefinite only from
    # that panel on: every earlier panel is factorised, then undone.
    monkeypatch.setattr(cholesky, "_PANEL", 4)
    rng = np.random.default_rng(7)
    n = 42
    x = rng.standard_normal((n, n + 5))
    i = 4 * fail_panel
    x[i + 1] = x[i]
    k = x @ x.T / (n + 5)
    k[i + 1, i + 1] -= 1e-8
    c = cholesky_in_place(np.array(k, order="F"))
    scale = float(np.mean(np.diagonal(k)))
    assert c.jitter in jitter_schedule(scale, 8)[1:]
    lower = np.tril(c.buffer)
    # Backward error of Cholesky: |L L^T - (K + jitter I)| <= c n eps |K|.
    np.testing.assert_allclose(lower @ lower.T, k + c.jitter * np.eye(n), rtol=0,
                               atol=100 * n * EPS * np.abs(k).max())  # fmt: skip
    np.testing.assert_array_equal(np.triu(c.buffer, 1), np.triu(k, 1))
    assert c.logdet() == pytest.approx(np.linalg.slogdet(k + c.jitter * np.eye(n))[1], rel=1e-8)


def test_as_fortran_copy_is_a_fresh_square_float64_copy():
    k = np.asfortranarray(np.arange(9.0).reshape(3, 3))
    out = as_fortran_copy(k)
    assert out.dtype == np.float64 and out.flags.f_contiguous
    assert not np.shares_memory(out, k)  # the Cholesky overwrites it in place
    np.testing.assert_array_equal(out, k)
    out32 = as_fortran_copy(torch.eye(2, dtype=torch.float32))
    assert out32.dtype == np.float64 and out32.flags.f_contiguous
    with pytest.raises(ValueError, match=r"k must be a square matrix\. Got 'shape \(2, 3\)'"):
        as_fortran_copy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k must be a 2-D"):
        as_fortran_copy(np.ones(3))


def test_gp_leaves_the_callers_kernel_untouched():
    from dltheory.kernels import gp_posterior

    k = np.asfortranarray([[2.0, 0.5], [0.5, 1.0]])
    before = k.copy()
    gp_posterior(k, k, [1.0, 0.0], noise=0.1)
    np.testing.assert_array_equal(k, before)


def test_given_scale_and_shift_are_used_and_reported():
    c = cholesky_in_place(np.zeros((2, 2), order="F"), scale=5.0)
    assert c.jitter == pytest.approx(5e-12, rel=1e-14)  # 5 * 10^-12, the first nonzero try
    c = cholesky_in_place(np.asfortranarray(np.eye(2)), shift=0.25)
    assert c.shift == 0.25 and c.jitter == 0.0
    np.testing.assert_allclose(np.diagonal(c.buffer), np.sqrt(1.25), rtol=1e-15)


def test_cholesky_error_messages_in_full():
    # The project's one message format: "<name> must be <constraint>. Got <value>. <fix>."
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.ones((3, 4), order="F"))
    assert str(err.value) == (
        "a must be a square Fortran-ordered float64 array. Got (3, 4). "
        "Use np.asfortranarray(k, dtype=np.float64)."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place([[1.0]])
    assert str(err.value).startswith(
        "a must be a square Fortran-ordered float64 array. Got 'list'."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.eye(2)), shift=-1.0)
    assert (
        str(err.value) == "shift must be a variance >= 0. Got -1.0. Variances cannot be negative."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.eye(2)), max_tries=0)
    assert str(err.value) == "max_tries must be an integer >= 1. Got 0."
    bad = np.asfortranarray(np.eye(2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError) as err:
        cholesky_in_place(bad)
    assert str(err.value) == "kernel must be finite. Got 'non-finite diagonal entries'."
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.diag([1.0, -1.0])), max_tries=1)
    assert str(err.value) == (
        "kernel must be positive definite (K + noise I, even with a jitter of 0.0e+00). "
        "Got 'smallest eigenvalue -1.000e+00'. Increase the noise / ridge term (alpha), "
        "remove duplicate inputs, or check that the kernel is a valid covariance."
    )


def test_non_finite_entries_in_the_last_panel_are_found(monkeypatch):
    monkeypatch.setattr(cholesky, "_PANEL", 4)
    k = np.eye(10) + 0.1
    k[9, 8] = k[8, 9] = np.inf  # only in the last two columns, off the diagonal
    with pytest.raises(ValueError, match=r"kernel must be finite\. Got 'non-finite entries'"):
        cholesky_in_place(np.array(k, order="F"), max_tries=2)


# ------------------------------------------------------------------- solvers.py
SPEC = MLP(depth=1, activation="relu", c_w=2.0, c_b=0.1)


def _problem(n, d=3, seed=0, cols=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = np.column_stack([np.sin(x[:, j % d]) + 0.1 * rng.standard_normal(n) for j in range(cols)])
    return x, y


def _k(x1, x2=None, kind="nngp", spec=SPEC):
    t2 = None if x2 is None else torch.as_tensor(x2)
    return getattr(spec.kernel(torch.as_tensor(x1), t2), kind).numpy()


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_exact_weighted_fit_and_its_evidence_equal_repeated_samples(kind):
    x, y = _problem(12, cols=2)
    w = np.array([1, 2, 3, 1, 1, 2, 1, 1, 4, 1, 1, 2])
    ridge = 0.05
    fit = fit_exact(SPEC, x, y, kind=kind, ridge=ridge, weights=w.astype(float))
    k = _k(x, kind=kind)
    ref = np.linalg.solve(k + np.diag(ridge / w), y)  # (K + ridge W^-1)^-1 y, dense
    np.testing.assert_allclose(fit.alpha, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # Evidence of the data set with sample i repeated w_i times: a Gaussian density.
    xr, yr = np.repeat(x, w, 0), np.repeat(y, w, 0)
    cov = _k(xr, kind=kind) + ridge * np.eye(len(xr))
    expected = sum(scipy.stats.multivariate_normal(np.zeros(len(xr)), cov).logpdf(c) for c in yr.T)
    assert fit.log_marginal_likelihood == pytest.approx(expected, rel=1e-10)
    plain = fit_exact(SPEC, x, y, kind=kind, ridge=ridge)
    cov = k + ridge * np.eye(len(x))
    expected = sum(scipy.stats.multivariate_normal(np.zeros(len(x)), cov).logpdf(c) for c in y.T)
    assert plain.log_marginal_likelihood == pytest.approx(expected, rel=1e-10)
    assert fit.factor is not None and fit.iterations == 0 and fit.residuals == ()


def test_pcg_with_a_full_rank_preconditioner_converges_at_once():
    # rank = N: the Nystrom approximation is K itself, P^-1 (K + ridge I) is a multiple of
    # I (Frangella et al. 2023, Eq. 5.3), so CG needs one step (two in floating point).
    x, y = _problem(40, cols=2)
    fit = fit_pcg(SPEC, x, y, ridge=0.1, rank=40, tol=1e-10)
    assert fit.converged and fit.iterations <= 2 and len(fit.residuals) == fit.iterations
    ref = np.linalg.solve(_k(x) + 0.1 * np.eye(40), y)
    np.testing.assert_allclose(fit.alpha, ref, rtol=0, atol=1e-8 * np.abs(ref).max())


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_pcg_weighted_and_ntk_equal_the_dense_solve(kind):
    x, y = _problem(40, cols=2)
    w = np.random.default_rng(1).uniform(0.3, 3.0, 40)
    fit = fit_pcg(SPEC, x, y, kind=kind, ridge=0.05, rank=40, tol=1e-12, weights=w)
    ref = np.linalg.solve(_k(x, kind=kind) + np.diag(0.05 / w), y)
    # ||alpha - ref|| <= ||(K + ridge W^-1)^-1|| tol ||y|| <= tol ||y|| max(w) / ridge.
    bound = 1e-12 * np.linalg.norm(y, axis=0).max() * 3.0 / 0.05
    assert np.abs(fit.alpha - ref).max() <= bound
    assert fit.converged and fit.residuals[-1] <= 1e-12
    # Residuals: the relative residual of the worst column after each step.
    assert list(fit.residuals) == sorted(fit.residuals, reverse=True) or fit.iterations > 0


def test_cg_keeps_a_zero_target_column_at_zero():
    x, y = _problem(30)
    y = np.column_stack([y[:, 0], np.zeros(30)])
    for fit in (
        fit_pcg(SPEC, x, y, ridge=0.1, rank=5, tol=1e-10),
        fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=10, tol=1e-10),
    ):
        assert fit.converged and np.isfinite(fit.residuals).all()
        np.testing.assert_array_equal(fit.alpha[:, 1], 0.0)


def test_pcg_stops_at_max_iter_and_says_so():
    x, y = _problem(80)
    fit = fit_pcg(SPEC, x, y, ridge=1e-6, rank=2, tol=1e-14, max_iter=3)
    assert not fit.converged and fit.iterations == 3 and len(fit.residuals) == 3
    r = y - (_k(x) + 1e-6 * np.eye(80)) @ fit.alpha  # the reported residual, recomputed
    assert fit.residuals[-1] == pytest.approx(np.linalg.norm(r) / np.linalg.norm(y), rel=1e-6)


def test_pcg_defaults_are_the_documented_ones():
    # Small N (kernels of <= 50,000 pairs x layers stay on the torch path, no compilation).
    x, y = _problem(60)
    default = fit_pcg(SPEC, x, y, ridge=1e-3)
    given = fit_pcg(SPEC, x, y, ridge=1e-3, kind="nngp", tol=1e-8, max_iter=500, seed=0)
    np.testing.assert_array_equal(default.alpha, given.alpha)
    assert default.residuals == given.residuals


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_falkon_with_every_centre_converges_at_once(kind):
    # m = N: n T^T A^T A T = K^2 + ridge K = H, so B^T H B = I (Rudi et al. 2017): one step.
    x, y = _problem(50, cols=2)
    fit = fit_falkon(SPEC, x, y, kind=kind, ridge=0.1, n_inducing=50, tol=1e-10)
    assert fit.converged and 1 <= fit.iterations <= 2 and fit.jitter == 0.0
    k = _k(x, kind=kind)
    ref = np.linalg.solve(k + 0.1 * np.eye(50), y)  # exact kernel ridge
    k_nc = _k(x, fit.centres.numpy(), kind=kind)
    np.testing.assert_allclose(k_nc @ fit.alpha, k @ ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("keep_cross", [True, False])
def test_falkon_in_blocks_equals_the_dense_weighted_nystrom_solve(keep_cross):
    x, y = _problem(70, cols=2)
    m, ridge = 12, 0.2
    w = None if not keep_cross else np.random.default_rng(2).uniform(0.5, 2.0, 70)
    fit = fit_falkon(SPEC, x, y, ridge=ridge, n_inducing=m, tol=1e-13, max_iter=200, seed=4,
                     block_rows=16, keep_cross=keep_cross, weights=w)  # fmt: skip
    c = fit.centres.numpy()
    k_nm, k_mm = _k(x, c), _k(c)
    ww = np.ones(70) if w is None else w
    # Normal equations of min sum_i w_i (K_nm a - y)_i^2 + ridge a^T K_mm a, dense.
    ref = np.linalg.solve(k_nm.T @ (ww[:, None] * k_nm) + ridge * k_mm, k_nm.T @ (ww[:, None] * y))
    np.testing.assert_allclose(k_nm @ fit.alpha, k_nm @ ref, rtol=0, atol=1e-8)
    assert fit.converged and len(c) == m
    # The centres are m distinct training points drawn by the seed.
    assert len({tuple(r) for r in c}) == m and all((x == r).all(1).any() for r in c)


def test_falkon_defaults_are_the_documented_ones():
    x, y = _problem(60)
    default = fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=20)
    given = fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=20, kind="nngp", tol=1e-8,
                       max_iter=100, seed=0, keep_cross=True)  # fmt: skip
    np.testing.assert_array_equal(default.alpha, given.alpha)
    assert default.residuals == given.residuals and default.converged


def test_solver_argument_errors_in_full():
    x, y = _problem(10)
    with pytest.raises(ValueError) as err:
        fit_exact(SPEC, x, y, weights=np.ones(9))
    assert str(err.value) == "weights must be of shape (10,) with entries > 0. Got (9,)."
    with pytest.raises(ValueError) as err:
        fit_pcg(SPEC, x, y, ridge=0.1, weights=np.r_[np.ones(9), 0.0])
    assert str(err.value) == "weights must be of shape (10,) with entries > 0. Got (10,)."
    with pytest.raises(ValueError) as err:
        fit_exact(SPEC, x, np.ones((10, 2, 2)))
    assert str(err.value) == "y must be of shape (10,) or (10, k) like x. Got (10, 2, 2)."
    with pytest.raises(TypeError) as err:
        fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=3, keep_cross=1)
    assert str(err.value) == "keep_cross must be True or False. Got 1."
    with pytest.raises(ValueError) as err:
        fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=3, keep_cross=False, weights=np.ones(10))
    assert str(err.value) == "weights must be None with keep_cross=False. Got 'weights'."
    for kw in ({"tol": 0.0}, {"max_iter": 0}, {"seed": -1}, {"rank": 0}):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} must be"):
            fit_pcg(SPEC, x, y, ridge=0.1, **kw)
    for kw in ({"tol": 0.0}, {"max_iter": 0}, {"seed": -1}):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} must be"):
            fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=3, **kw)
    with pytest.raises(ValueError, match="ridge must be a variance >= 0"):
        fit_exact(SPEC, x, y, ridge=-1.0)


# ------------------------------------------------------------------------ gp.py
def test_maximize_evidence_stops_at_its_documented_noise_bounds():
    from dltheory.kernels import maximize_evidence

    rng = np.random.default_rng(8)
    x = rng.standard_normal((15, 2))
    # Noise-free targets: the evidence keeps growing as the noise falls, to exp(-9).
    fit = maximize_evidence(x, np.sin(x[:, 0]), depths=(1,), max_iter=30)
    assert fit.noise == pytest.approx(math.exp(-9.0), rel=1e-12)
    # White noise of variance 1e6: the best noise variance is ~1e6, beyond exp(5).
    fit = maximize_evidence(x, 1e3 * rng.standard_normal(15), depths=(1,), max_iter=30)
    assert fit.noise == pytest.approx(math.exp(5.0), rel=1e-12)


def test_maximize_evidence_keeps_the_best_depth_and_its_defaults():
    from dltheory.kernels import log_marginal_likelihood, maximize_evidence

    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 2))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.standard_normal(8)
    fit = maximize_evidence(x, y, max_iter=2)
    given = maximize_evidence(x, y, activation="relu", depths=(1, 2, 3), c_w=1.0, c_b=0.1,
                              noise=0.1, max_iter=2)  # fmt: skip
    assert fit == given  # the documented defaults
    assert set(fit.by_depth) == {1, 2, 3}
    best = max(fit.by_depth, key=lambda d: fit.by_depth[d][3])
    assert fit.depth == best and fit.log_marginal_likelihood == fit.by_depth[best][3]
    assert (fit.c_w, fit.c_b, fit.noise) == pytest.approx(fit.by_depth[best][:3], rel=1e-12)
    for depth, (c_w, c_b, noise, lml) in fit.by_depth.items():  # each entry recomputed
        k = MLP(depth, "relu", c_w=c_w, c_b=c_b).kernel(torch.from_numpy(x)).nngp
        assert lml == pytest.approx(log_marginal_likelihood(k, y, noise=noise), rel=1e-9)


def test_gp_posterior_default_noise_is_zero_and_errors_in_full():
    from dltheory.kernels import gp_posterior, log_marginal_likelihood

    k = np.array([[2.0, 0.5], [0.5, 1.0]])
    k_sn = np.array([[0.3, 0.2]])
    post = gp_posterior(k, k_sn, [1.0, -1.0], k_test_test=[1.5])
    alpha = np.linalg.solve(k, [1.0, -1.0])  # noise-free interpolation, dense
    np.testing.assert_allclose(post.mean, k_sn @ alpha, rtol=1e-14)
    np.testing.assert_allclose(post.var, 1.5 - k_sn @ np.linalg.solve(k, k_sn.T)[:, 0], rtol=1e-14)
    expected = scipy.stats.multivariate_normal(np.zeros(2), k).logpdf([1.0, -1.0])
    assert log_marginal_likelihood(k, [1.0, -1.0]) == pytest.approx(expected, rel=1e-13)
    cases = [
        (lambda: gp_posterior(np.ones((2, 3)), k_sn, [1.0, 2.0]),
         "k_train_train must be a square matrix. Got (2, 3)."),
        (lambda: gp_posterior(k, np.ones((1, 3)), [1.0, 2.0]),
         "k_test_train must be of shape (M, 2). Got (1, 3)."),
        (lambda: gp_posterior(k, np.ones(2), [1.0, 2.0]),
         "k_test_train must be a 2-D array. Got 'shape (2,)'."),
        (lambda: gp_posterior(k, k_sn, [1.0, 2.0], k_test_test=np.ones(3)),
         "k_test_test must be of shape (1,) or (1, 1). Got (3,)."),
        (lambda: gp_posterior(k, k_sn, [1.0, 2.0, 3.0]),
         "y_train must be of length 2 like k_train_train. Got (3,)."),
        (lambda: log_marginal_likelihood(np.ones((2, 3)), [1.0, 2.0]),
         "k_train_train must be a square matrix. Got (2, 3)."),
    ]  # fmt: skip
    for call, text in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == text


def test_gp_posterior_reports_evidence_and_the_blocks_it_was_given():
    from dltheory.kernels import gp_posterior, maximize_evidence

    k = np.array([[2.0, 0.5], [0.5, 1.0]])
    k_sn = np.array([[0.3, 0.2], [0.1, 0.4]])
    k_ss = np.array([[1.5, 0.2], [0.2, 1.1]])
    y = np.array([1.0, -1.0])
    expected = scipy.stats.multivariate_normal(np.zeros(2), k + 0.1 * np.eye(2)).logpdf(y)
    post = gp_posterior(k, k_sn, y, noise=0.1)
    assert post.var is None and post.cov is None
    assert post.log_marginal_likelihood == pytest.approx(expected, rel=1e-13)
    full = gp_posterior(k, k_sn, y, k_test_test=k_ss, noise=0.1)
    cov = k_ss - k_sn @ np.linalg.solve(k + 0.1 * np.eye(2), k_sn.T)  # dense
    np.testing.assert_allclose(full.cov, cov, rtol=1e-13)
    np.testing.assert_allclose(full.var, np.diagonal(cov), rtol=1e-13)
    with pytest.raises(ValueError) as err:
        gp_posterior(k, k_sn, y, k_test_test=np.ones((2, 2, 2)))
    assert str(err.value) == "k_test_test must be a (1, 2)-D array. Got 'shape (2, 2, 2)'."
    # The activation is the one asked for (erf here, not the default relu).
    x = np.random.default_rng(2).standard_normal((10, 2))
    fit = maximize_evidence(x, np.sin(x[:, 0]), activation="erf", depths=(1,), max_iter=3)
    kx = MLP(1, "erf", c_w=fit.c_w, c_b=fit.c_b).kernel(torch.from_numpy(x)).nngp.numpy()
    cov = kx + fit.noise * np.eye(10)
    expected = scipy.stats.multivariate_normal(np.zeros(10), cov).logpdf(np.sin(x[:, 0]))
    assert fit.log_marginal_likelihood == pytest.approx(expected, rel=1e-9)


def test_maximize_evidence_accepts_targets_of_magnitude_1e150_and_refuses_above():
    # The documented bound is inclusive: y up to 1e150 gives finite evidence (y^T K^-1 y
    # ~ 1e300 < float64's 1.8e308), above it the fit is refused in one line.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2))
    y = np.sin(x[:, 0])
    y = y / np.abs(y).max()
    from dltheory.kernels import maximize_evidence

    fit = maximize_evidence(x, 1e150 * y, depths=(1,), max_iter=2)
    assert np.isfinite(fit.log_marginal_likelihood)
    with pytest.raises(ValueError, match=r"y must be targets of magnitude <= 1e150\. Got 1.0"):
        maximize_evidence(x, 1.0000001e150 * y, depths=(1,), max_iter=2)


def test_maximize_evidence_default_is_50_l_bfgs_b_iterations_per_depth(monkeypatch):
    # The documented default max_iter = 50 reaches scipy's L-BFGS-B as maxiter, per depth.
    import scipy.optimize

    from dltheory.kernels import maximize_evidence

    seen = []
    real = scipy.optimize.minimize

    def spy(*args, **kwargs):
        seen.append((kwargs.get("method"), kwargs["options"]["maxiter"]))
        kwargs["options"] = {**kwargs["options"], "maxiter": 1}  # keep the test fast
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", spy)
    x = np.random.default_rng(3).standard_normal((6, 2))
    maximize_evidence(x, np.sin(x[:, 0]), depths=(1, 2))
    assert seen == [("L-BFGS-B", 50), ("L-BFGS-B", 50)]
