"""CG on a stored Gram (kernels/gram_cg.py) and fit_exact(factor=False), against dense
NumPy solves."""

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.kernels import gram_matrix, solvers
from dltheory.kernels.cholesky import REFINE_TOL
from dltheory.kernels.gram_cg import _nystrom_woodbury, _over_budget, gram_cg
from dltheory.kernels.solvers import fit_exact

SPEC = MLP(3, "relu", c_w=2.0, c_b=0.1)


def _problem(n, seed=0, k_out=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8))
    y = np.sin(x[:, :k_out] * 2) + 0.1 * rng.standard_normal((n, k_out))
    k = SPEC.kernel(torch.from_numpy(x)).nngp.numpy()  # independent of gram_matrix
    return x, y, k


def _backward_error(a, x, y):
    """Normwise backward error with the exact 2-norm of A (NumPy), per column, max."""
    r = y - a @ x
    norm = np.linalg.norm(a, 2)
    return float((np.linalg.norm(r, axis=0) / (norm * np.linalg.norm(x, axis=0)
                                                + np.linalg.norm(y, axis=0))).max())  # fmt: skip


def test_woodbury_preconditioner_is_the_inverse_of_nystrom_plus_diagonal():
    _, _, k = _problem(300)
    d = np.linspace(0.1, 0.3, 300)
    m = 40
    apply = _nystrom_woodbury(np.asfortranarray(k), torch.from_numpy(d).reshape(-1, 1), m, 3)
    idx = np.sort(np.random.default_rng(3).choice(300, size=m, replace=False))
    k_nm = k[:, idx]
    nystrom = k_nm @ np.linalg.solve(k[np.ix_(idx, idx)], k_nm.T)  # K_nm K_mm^-1 K_mn
    dense = np.linalg.inv(nystrom + np.diag(d))
    z = np.random.default_rng(1).standard_normal((300, 2))
    got = apply(torch.from_numpy(z)).numpy()
    # both sides are float64 solves of a matrix with condition ~ max(K)/0.1 < 1e4:
    # agreement to 1e-9 relative leaves that margin
    assert np.abs(got - dense @ z).max() <= 1e-9 * np.abs(dense @ z).max()


@pytest.mark.parametrize("k_out", [1, 3])
def test_gram_cg_reaches_the_backward_error_of_a_float64_solve(k_out):
    _, y, k = _problem(400, k_out=k_out)
    ridge = 0.05
    out = gram_cg(np.asfortranarray(k), y, np.full(400, ridge), rank=50, tol=REFINE_TOL)
    assert out.converged and not out.gave_up and out.iterations > 1
    a = k + ridge * np.eye(400)
    # the code's ||A|| is a lower bound of the true 2-norm used here, so the true
    # backward error is at most the one the code stopped at
    assert _backward_error(a, out.x, y) <= REFINE_TOL
    ref = np.linalg.solve(a, y)
    kappa = np.linalg.cond(a)
    # forward error <= ~2 kappa * backward error (Higham 2002, Thm. 7.2), plus the
    # dense solve's own
    assert np.abs(out.x - ref).max() <= 4 * kappa * REFINE_TOL * np.abs(ref).max()


def test_fit_exact_without_factor_matches_the_dense_solve_with_weights():
    x, y, k = _problem(300, seed=2)
    w = np.random.default_rng(5).uniform(0.5, 2.0, 300)
    ridge = 0.1
    fit = fit_exact(SPEC, x, y, ridge=ridge, weights=w, precision="cg", factor=False)
    assert fit.precision == "cg" and fit.converged
    assert fit.factor is None and fit.log_marginal_likelihood is None
    a = k + np.diag(ridge / w)
    assert _backward_error(a, fit.alpha, y) <= REFINE_TOL
    ref = fit_exact(SPEC, x, y, ridge=ridge, weights=w, precision="float64")
    kappa = np.linalg.cond(a)
    scale = np.abs(ref.alpha).max()
    assert np.abs(fit.alpha - ref.alpha).max() <= 4 * kappa * REFINE_TOL * scale


def test_auto_without_factor_takes_cg_and_with_factor_keeps_cholesky(monkeypatch):
    monkeypatch.setattr(solvers, "MIXED_MIN_SIZE", 100)
    x, y, k = _problem(200, seed=4)
    ref = np.linalg.solve(k + 0.2 * np.eye(200), y)
    no_factor = fit_exact(SPEC, x, y, ridge=0.2, factor=False)
    assert no_factor.precision == "cg" and no_factor.factor is None
    with_factor = fit_exact(SPEC, x, y, ridge=0.2)
    assert with_factor.precision in ("mixed", "float64") and with_factor.factor is not None
    kappa = np.linalg.cond(k + 0.2 * np.eye(200))
    for fit in (no_factor, with_factor):
        assert np.abs(fit.alpha - ref).max() <= 4 * kappa * REFINE_TOL * np.abs(ref).max()


def test_cg_gives_up_for_the_factor_and_finishes_from_its_iterate(monkeypatch):
    monkeypatch.setattr(solvers, "MIXED_MIN_SIZE", 100)
    monkeypatch.setattr(solvers, "_float32_cholesky_seconds", lambda n: 0.0)
    calls = []
    real = solvers.gram_cg

    def spy(*a, **kw):
        out = real(*a, **kw)
        calls.append(out)
        return out

    monkeypatch.setattr(solvers, "gram_cg", spy)
    x, y, k = _problem(200, seed=6)
    fit = fit_exact(SPEC, x, y, ridge=1e-3, factor=False)
    assert calls and calls[0].gave_up and not calls[0].converged
    assert fit.precision in ("mixed", "float64") and fit.factor is None
    a = k + 1e-3 * np.eye(200)
    ref = np.linalg.solve(a, y)
    kappa = np.linalg.cond(a)
    assert np.abs(fit.alpha - ref).max() <= 4 * kappa * REFINE_TOL * np.abs(ref).max() + 1e-12


def test_over_budget_extrapolates_the_geometric_rate():
    res = [0.5**i for i in range(1, 9)]  # rate 1/2; 8 iterations took 1 s
    # to reach 2^-46 from 2^-8 needs 38 more iterations: 46 in all, 5.75 s
    assert not _over_budget(res, 2.0**-46, 1.0, 6.0)
    assert _over_budget(res, 2.0**-46, 1.0, 5.5)
    assert _over_budget([1.0] * 6, 1e-10, 0.0, 100.0)  # no progress in five steps
    assert not _over_budget([0.1] * 3, 1e-10, 0.0, 100.0)  # too early to tell


def test_refusals():
    x, y, _ = _problem(20)
    with pytest.raises(ValueError, match="factor=False"):
        fit_exact(SPEC, x, y, ridge=0.1, precision="cg")
    with pytest.raises(TypeError, match="factor"):
        fit_exact(SPEC, x, y, ridge=0.1, factor="no")
    with pytest.raises(ValueError, match="ridge"):
        fit_exact(SPEC, x, y, ridge=0.0, precision="cg", factor=False)


def test_gram_matrix_and_kernel_agree_for_the_problem():
    # the tests above build K with spec.kernel; fit_exact uses gram_matrix
    x, _, k = _problem(64)
    assert np.abs(gram_matrix(SPEC, x) - k).max() <= 1e-13 * np.abs(k).max()
