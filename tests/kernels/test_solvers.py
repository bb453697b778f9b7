"""Kernel ridge solvers: exact in place, Nystrom-preconditioned CG, Falkon."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.kernels import fit_exact, fit_falkon, fit_pcg

SPEC = MLP(depth=1, activation="relu", c_w=2.0, c_b=0.1)


def _data(n, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(n)


def test_exact_equals_dense_solve():
    x, y = _data(300)
    k = SPEC.kernel(torch.from_numpy(x)).nngp.numpy()
    fit = fit_exact(SPEC, x, y, ridge=1e-3, block_rows=64)
    ref = np.linalg.solve(k + 1e-3 * np.eye(300), y)
    # cond(K + 1e-3 I) ~ 1e5: both solves are backward stable, so ~1e5 * eps relative.
    np.testing.assert_allclose(fit.alpha[:, 0], ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    assert fit.jitter == 0.0 and fit.converged and fit.iterations == 0


def test_pcg_matches_exact_to_the_requested_tolerance_at_n_5000():
    x, y = _data(5000)
    ridge, tol = 0.05, 1e-6
    exact = fit_exact(SPEC, x, y, ridge=ridge)
    cg = fit_pcg(SPEC, x, y, ridge=ridge, rank=300, tol=tol, max_iter=100)
    assert cg.converged and cg.residuals[-1] <= tol
    # ||alpha - alpha*|| <= ||(K + ridge I)^-1|| ||r|| <= tol ||y|| / ridge.
    err = np.linalg.norm(cg.alpha - exact.alpha)
    assert err <= tol * np.linalg.norm(y) / ridge
    # Predictions: |K_*n (alpha - alpha*)| <= ||K_*n|| err; check on 200 test points.
    xs, _ = _data(200, seed=1)
    k_sn = SPEC.kernel(torch.from_numpy(xs), torch.from_numpy(x)).nngp.numpy()
    bound = np.linalg.norm(k_sn, 2) * tol * np.linalg.norm(y) / ridge
    assert np.abs(k_sn @ (cg.alpha - exact.alpha)).max() <= bound


def test_falkon_with_every_point_as_centre_is_exact():
    x, y = _data(400)
    exact = fit_exact(SPEC, x, y, ridge=0.1)
    fal = fit_falkon(SPEC, x, y, ridge=0.1, n_inducing=400, tol=1e-12, max_iter=50)
    k = SPEC.kernel(torch.from_numpy(x)).nngp.numpy()
    # Same function (the centres are a permutation of x): compare fitted values.
    k_nc = SPEC.kernel(torch.from_numpy(x), fal.centres).nngp.numpy()
    np.testing.assert_allclose(k_nc @ fal.alpha, k @ exact.alpha, atol=1e-8)


def test_falkon_equals_the_dense_nystrom_solution():
    x, y = _data(600)
    m, ridge = 60, 0.2
    fal = fit_falkon(SPEC, x, y, ridge=ridge, n_inducing=m, tol=1e-12, max_iter=100, seed=3)
    k_nm = SPEC.kernel(torch.from_numpy(x), fal.centres).nngp.numpy()
    k_mm = SPEC.kernel(fal.centres).nngp.numpy()
    # The normal equations of min ||K_nm a - y||^2 + ridge a^T K_mm a, solved densely.
    ref = np.linalg.lstsq(k_nm.T @ k_nm + ridge * k_mm, k_nm.T @ y, rcond=None)[0]
    np.testing.assert_allclose(k_nm @ fal.alpha[:, 0], k_nm @ ref, atol=1e-7)
    assert fal.converged and len(fal.centres) == m


def test_solver_errors():
    x, y = _data(20)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        fit_pcg(SPEC, x, y, ridge=0.0)
    with pytest.raises(ValueError, match=r"y must be of shape \(20,\) or \(20, k\)"):
        fit_exact(SPEC, x, y[:5])
    with pytest.raises(ValueError, match="n_inducing must be an integer >= 1"):
        fit_falkon(SPEC, x, y, ridge=1.0, n_inducing=0)


@pytest.mark.parametrize("fit", [fit_exact, fit_pcg, fit_falkon], ids=lambda f: f.__name__)
def test_solver_inputs_are_checked(fit):
    spec = MLP(1, "relu", c_w=2.0)
    x = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)  # detached, accepted
    y = torch.randn(12, dtype=torch.float64)
    extra = {"n_inducing": 4} if fit is fit_falkon else {}
    assert fit(spec, x, y, ridge=0.1, **extra).alpha.shape == (len(x) if fit is not fit_falkon
                                                                else 4, 1)  # fmt: skip
    with pytest.raises(ValueError, match=r"kind must be one of 'nngp', 'ntk'\. Got 'bogus'"):
        fit(spec, x, y, ridge=0.1, kind="bogus", **extra)
    bad = y.clone()
    bad[0] = float("nan")
    with pytest.raises(ValueError, match="y must be finite"):
        fit(spec, x, bad, ridge=0.1, **extra)
    with pytest.raises(ValueError, match=r"y must be of shape \(12,\)"):
        fit(spec, x, y[:5], ridge=0.1, **extra)
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        fit(spec, x[0], y, ridge=0.1, **extra)


def test_falkon_on_a_local_dask_cluster_equals_serial():
    pytest.importorskip("dask.distributed")
    from dltheory.parallel import pool

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((300, 3)))
    y = torch.sin(x[:, 0]) + 0.1 * torch.from_numpy(rng.standard_normal(300))
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    kw = {"ridge": 1e-2, "n_inducing": 40, "tol": 1e-12, "max_iter": 200, "block_rows": 64}
    serial = fit_falkon(spec, x, y, **kw)
    recomputed = fit_falkon(spec, x, y, keep_cross=False, **kw)
    with pool("dask", n_workers=2) as p:  # two worker processes, K_nm blocks kept there
        distributed = fit_falkon(spec, x, y, pool=p, **kw)
    assert serial.converged and distributed.converged
    # Same blocks; serially K_nm is one array whose product sums rows per thread, the
    # workers sum per block: the products differ in the last bits (~1e-16 relative), which
    # ~45 CG iterations amplify in alpha (cond(K_mm) ~1e5) to ~1e-9 relative, but not in
    # the fitted function K_nm alpha (cond of the preconditioned system ~1e2): 1e-11.
    knm = spec.kernel(x, serial.centres).nngp.numpy()
    fitted = knm @ serial.alpha
    scale = np.abs(fitted).max()
    assert np.abs(knm @ distributed.alpha - fitted).max() <= 1e-11 * scale
    np.testing.assert_allclose(distributed.alpha, serial.alpha, rtol=1e-7)
    np.testing.assert_allclose(recomputed.alpha, serial.alpha, rtol=0, atol=1e-9)


# ------------------------------------------- mixed precision (float32 factor, float64 CG)
DEEP = MLP(depth=3, activation="relu", c_w=2.0, c_b=0.1)  # the benchmark's kernel


def _predict(spec, fit, xs):
    return spec.kernel(torch.from_numpy(xs), fit.centres).nngp.numpy() @ fit.alpha


def test_mixed_precision_predictions_equal_the_float64_solve():
    x, y = _data(600, d=8, seed=4)
    xs, _ = _data(50, d=8, seed=5)
    k = DEEP.kernel(torch.from_numpy(x)).nngp.numpy() + 0.25 * np.eye(600)
    ref = np.linalg.solve(k, y)  # independent dense float64 solve
    kappa = np.linalg.cond(k)
    mixed = fit_exact(DEEP, x, y, ridge=0.25, precision="mixed")
    assert mixed.precision == "mixed" and mixed.converged and 1 <= mixed.iterations <= 10
    assert mixed.jitter == 0.0 and mixed.residuals[-1] <= mixed.factor.tol
    # Forward error <= 2 kappa eta for each of the two backward-stable solves (ours:
    # eta <= tol = 2^-46 as checked; numpy's LU: eta <= ~n u64): a 1e-8 bound here.
    bound = 2 * kappa * (mixed.factor.tol + 600 * 2.0**-53) * 2
    assert bound <= 1e-8
    np.testing.assert_allclose(mixed.alpha[:, 0], ref, rtol=0, atol=bound * np.abs(ref).max())
    pm = _predict(DEEP, mixed, xs)
    pd = DEEP.kernel(torch.from_numpy(xs), torch.from_numpy(x)).nngp.numpy() @ ref
    assert np.abs(pm[:, 0] - pd).max() <= bound * np.abs(pd).max()
    # Weights: the same (K + ridge W^-1) system in either precision.
    w = np.linspace(0.5, 2.0, 600)
    wm = fit_exact(DEEP, x, y, ridge=0.25, weights=w, precision="mixed")
    wf = fit_exact(DEEP, x, y, ridge=0.25, weights=w, precision="float64")
    assert np.abs(wm.alpha - wf.alpha).max() <= bound * np.abs(wf.alpha).max()


def test_auto_precision_picks_float64_when_small_or_ill_conditioned(monkeypatch):
    from dltheory.kernels import solvers

    x, y = _data(300, d=2, seed=6)
    fit = fit_exact(DEEP, x, y, ridge=0.25)
    assert fit.precision == "float64"  # N < MIXED_MIN_SIZE
    monkeypatch.setattr(solvers, "MIXED_MIN_SIZE", 100)
    assert fit_exact(DEEP, x, y, ridge=0.25).precision == "mixed"
    # Ridge 1e-10 on 300 points in 2-D: kappa ~ 1e12, beyond float32 (u32 kappa >> 1).
    auto = fit_exact(DEEP, x, y, ridge=1e-10)
    f64 = fit_exact(DEEP, x, y, ridge=1e-10, precision="float64")
    assert auto.precision == "float64" and np.array_equal(auto.alpha, f64.alpha)
    with pytest.raises(ValueError, match="float32"):
        fit_exact(DEEP, x, y, ridge=1e-10, precision="mixed")
    with pytest.raises(ValueError, match="precision must be one of"):
        fit_exact(DEEP, x, y, precision="half")


def test_exact_and_falkon_targets_near_the_float64_limit():
    # The coefficients are linear in y; 2^996 scales exactly, so the fits must be
    # bit-identical multiples (each solver scales y by a power of two internally).
    x, y = _data(120, seed=7)
    base = fit_exact(SPEC, x, y, ridge=1e-3)
    big = fit_exact(SPEC, x, y * 2.0**996, ridge=1e-3)
    assert np.array_equal(big.alpha, base.alpha * 2.0**996)
    # y^T K_y^-1 y ~ 2^1992 overflows: log p(y) = -inf is the float64 answer.
    assert big.log_marginal_likelihood == -np.inf
    huge = fit_exact(SPEC, x, y * 1e300, ridge=1e-3)
    assert np.allclose(
        huge.alpha / 1e300, base.alpha, rtol=0, atol=1e-12 * np.abs(base.alpha).max()
    )
    mid = fit_exact(SPEC, x, y * 2.0**400, ridge=1e-3)  # log p finite: -y^T a / 2 scaled by 2^800
    quad = float(y @ base.alpha[:, 0])
    assert mid.log_marginal_likelihood == pytest.approx(-0.5 * quad * 2.0**800, rel=1e-12)
    fb = fit_falkon(SPEC, x, y, ridge=1e-3, n_inducing=40)
    fh = fit_falkon(SPEC, x, y * 2.0**996, ridge=1e-3, n_inducing=40)
    assert np.array_equal(fh.alpha, fb.alpha * 2.0**996) and np.isfinite(fh.alpha).all()
    with pytest.raises(ValueError, match="coefficients overflow"):
        fit_exact(SPEC, x, np.full(120, 1.7e308), ridge=1e-9)


def test_estimator_reports_precision_and_its_std_equals_float64(monkeypatch):
    from dltheory.estimators import NNGPRegressor
    from dltheory.kernels import solvers

    x, y = _data(300, d=4, seed=8)
    kw = {"depth": 3, "c_w": 2.0, "c_b": 0.1, "alpha": 0.25, "optimizer": None}
    f64 = NNGPRegressor(**kw).fit(x, y)
    monkeypatch.setattr(solvers, "MIXED_MIN_SIZE", 100)
    mixed = NNGPRegressor(**kw).fit(x, y)
    assert (f64.precision_, mixed.precision_) == ("float64", "mixed")
    mean64, std64 = f64.predict(x[:20], return_std=True)
    mean, std = mixed.predict(x[:20], return_std=True)
    # cond(K + 0.25 I) < 1e3 here: both solves' forward errors are <= ~1e3 * 1e-13.
    np.testing.assert_allclose(mean, mean64, rtol=0, atol=1e-9 * np.abs(mean64).max())
    np.testing.assert_allclose(std, std64, rtol=1e-9)
