"""Tests that kill the surviving mutants of ``kernels/solvers.py`` (issue 24).

Expected values come from dense NumPy solves and from closed forms of CG (on a
system whose preconditioned matrix is a multiple of the identity CG stops after one
step), never from the solvers' own output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.kernels import fit_exact, fit_falkon, fit_pcg


def test_pcg_preconditioner_floor_is_lam_r_plus_ridge():
    # Identity network: K = c_w (c_w x x'/d + c_b) + c_b has rank d + 1 = 3 < rank 10 of
    # the Nystrom sketch, so K = U diag(lam) U^T exactly, lam_r ~ 0, and
    # P^-1 (K + ridge I) = (lam_r + ridge) U U^T + ridge (I - U U^T) ~ ridge I: one CG step.
    # A floor lam_r - ridge makes the preconditioned matrix indefinite (-ridge and ridge).
    spec = MLP(depth=1, activation="identity", c_w=1.0, c_b=0.5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 2))
    y = rng.standard_normal(60)
    fit = fit_pcg(spec, x, y, ridge=0.1, rank=10, tol=1e-8)
    assert fit.iterations == 1 and fit.converged and fit.residuals[0] <= 1e-8
    k = spec.kernel(torch.from_numpy(x)).nngp.numpy()
    ref = np.linalg.solve(k + 0.1 * np.eye(60), y)
    # cond(K + 0.1 I) ~ 600; a relative residual 1e-8 bounds the error by 600 * 1e-8.
    np.testing.assert_allclose(fit.alpha[:, 0], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_falkon_without_keep_cross_never_stores_k_nm(monkeypatch):
    # keep_cross=False recomputes the blocks every iteration: the (N, m) K_nm is never built.
    from dltheory.kernels import solvers

    def refuse(*args, **kwargs):
        raise AssertionError("K_nm built with keep_cross=False")

    monkeypatch.setattr(solvers, "_cross_matrix", refuse)
    x = np.random.default_rng(1).standard_normal((40, 3))
    fit = fit_falkon(MLP(depth=1), x, np.sin(x[:, 0]), ridge=0.1, n_inducing=8, keep_cross=False)
    assert fit.alpha.shape == (8, 1)


def test_all_zero_targets_give_zero_coefficients_and_the_gaussian_normaliser():
    # y = 0: alpha = 0 and log p(0) = -log det(K + ridge I) / 2 - N log(2 pi) / 2 (dense
    # slogdet; cond ~ 1e3, so ~1e-13 relative).
    spec = MLP(depth=1, activation="relu", c_w=2.0, c_b=0.1)
    x = np.random.default_rng(2).standard_normal((30, 3))
    fit = fit_exact(spec, x, np.zeros(30), ridge=0.01)
    assert not fit.alpha.any()
    k = spec.kernel(torch.from_numpy(x)).nngp.numpy()
    logdet = np.linalg.slogdet(k + 0.01 * np.eye(30))[1]
    ref = -0.5 * logdet - 15 * np.log(2 * np.pi)
    assert fit.log_marginal_likelihood == pytest.approx(ref, rel=1e-10)
    assert not fit_falkon(spec, x, np.zeros(30), ridge=0.01, n_inducing=5).alpha.any()


def test_fit_pcg_defaults_reach_the_solver(monkeypatch):
    # Documented defaults: rank 200 Nystrom columns (capped at N), tol 1e-8, max_iter 500.
    from dltheory.kernels import solvers

    seen = {}
    real_cg, real_centres = solvers._cg, solvers._centres

    def cg(apply, rhs, precondition, tol, max_iter):
        seen["cg"] = (tol, max_iter)
        return real_cg(apply, rhs, precondition, tol, max_iter)

    def centres(n, m, seed):
        seen["centres"] = (n, m, seed)
        return real_centres(n, m, seed)

    monkeypatch.setattr(solvers, "_cg", cg)
    monkeypatch.setattr(solvers, "_centres", centres)
    x = np.random.default_rng(4).standard_normal((250, 2))
    fit_pcg(MLP(depth=1), x, np.sin(x[:, 0]), ridge=0.1)
    assert seen == {"cg": (1e-8, 500), "centres": (250, 200, 0)}
