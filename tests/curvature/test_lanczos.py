"""Lanczos: certified eigenpairs against dense eigendecompositions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory.curvature import lanczos_eigenpairs


def _sym(n: int, eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return Q @ torch.diag(eigenvalues) @ Q.T


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_certified_pairs_match_dense(which):
    lam = torch.linspace(-3.0, 5.0, 200, dtype=torch.float64) ** 3
    A = _sym(200, lam)
    tol = 1e-9
    r = lanczos_eigenpairs(lambda v: A @ v, 200, k=5, which=which, tol=tol)
    exact = torch.linalg.eigvalsh(A)
    key = {"largest": -exact, "smallest": exact, "magnitude": -exact.abs()}[which]
    expected = exact[torch.argsort(key)[:5]]
    assert r.converged
    # Certified: |theta - lambda| <= residual <= tol |theta|.
    assert torch.allclose(r.eigenvalues, expected, rtol=tol, atol=0)
    V = r.eigenvectors
    true_res = (A @ V - V * r.eigenvalues).norm(dim=0)
    assert bool((true_res <= tol * r.eigenvalues.abs() * 1.01).all())
    # The reported residuals are the true ones up to rounding (1e-12 ||A||).
    assert torch.allclose(r.residuals, true_res, atol=1e-12 * float(lam.abs().max()))
    assert torch.allclose(V.T @ V, torch.eye(5, dtype=torch.float64), atol=1e-10)


def test_warm_start_converges_at_once():
    lam = torch.arange(1.0, 101.0, dtype=torch.float64)
    A = _sym(100, lam, seed=1)
    top = torch.linalg.eigh(A).eigenvectors[:, -1]
    r = lanczos_eigenpairs(lambda v: A @ v, 100, k=1, tol=1e-8, v0=top)
    assert r.n_matvecs == 1 and r.converged
    assert r.eigenvalues.item() == pytest.approx(100.0, rel=1e-12)


def test_low_rank_operator_restarts_after_breakdown():
    # rank 2: the Krylov space from one vector is 2-dimensional; k = 4 needs restarts
    # into the null space and returns zeros there (certified by the absolute floor).
    U = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    A = U @ U.T
    r = lanczos_eigenpairs(lambda v: A @ v, 30, k=4, tol=1e-8)
    exact = torch.linalg.eigvalsh(A).flip(0)[:4]
    assert r.converged
    assert torch.allclose(r.eigenvalues, exact, atol=1e-10 * float(exact[0]))


def test_exhausts_small_space():
    A = torch.diag(torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64))
    r = lanczos_eigenpairs(lambda v: A @ v, 3, k=3, tol=1e-14)
    assert r.converged and r.n_matvecs <= 3
    assert torch.allclose(r.eigenvalues, torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64))


def test_budget_exhausted_reports_not_converged():
    A = torch.diag(torch.linspace(1.0, 1.001, 500, dtype=torch.float64))
    r = lanczos_eigenpairs(lambda v: A @ v, 500, k=3, tol=1e-14, max_matvecs=5)
    assert not r.converged and r.n_matvecs == 5


def test_accepts_operator_objects_and_float32():
    class Op:
        def matvec(self, v):
            return 2.0 * v

    r = lanczos_eigenpairs(Op(), 10, k=1, dtype=torch.float32)
    assert r.eigenvalues.dtype == torch.float32 and r.eigenvalues.item() == pytest.approx(2.0)


def test_bad_input():
    A = torch.eye(4, dtype=torch.float64)
    mv = lambda v: A @ v  # noqa: E731
    with pytest.raises(ValueError, match="k must be at most dim = 4"):
        lanczos_eigenpairs(mv, 4, k=5)
    with pytest.raises(ValueError, match="which must be one of"):
        lanczos_eigenpairs(mv, 4, k=1, which="top")
    with pytest.raises(ValueError, match="tol must be > 0"):
        lanczos_eigenpairs(mv, 4, k=1, tol=0.0)
    with pytest.raises(TypeError, match="matvec must be a callable"):
        lanczos_eigenpairs(3, 4, k=1)
    with pytest.raises(ValueError, match=r"v0 must be of shape \(4,\)"):
        lanczos_eigenpairs(mv, 4, k=1, v0=torch.ones(3))
    with pytest.raises(ValueError, match="v0 must be a finite non-zero vector"):
        lanczos_eigenpairs(mv, 4, k=1, v0=torch.zeros(4))
    with pytest.raises(ValueError, match=r"matvec must be a map to vectors of shape \(4,\)"):
        lanczos_eigenpairs(lambda v: v[:2], 4, k=1)
    with pytest.raises(ValueError, match="matvec must be finite"):
        lanczos_eigenpairs(lambda v: v * float("nan"), 4, k=1)


def test_memory_budget_sets_the_basis():
    A = torch.diag(torch.linspace(0.0, 1.0, 400, dtype=torch.float64) ** 4)
    vector = 400 * 8
    # 16 vectors of budget: 6 basis vectors, as many residual directions, 4 work vectors;
    # the answer is unchanged.
    r = lanczos_eigenpairs(lambda v: A @ v, 400, k=3, tol=1e-8, memory_budget=16 * vector)
    top = torch.linalg.eigvalsh(A).flip(0)[:3]
    assert r.converged and torch.allclose(r.eigenvalues, top, atol=1e-7)
    with pytest.raises(ValueError, match="memory_budget must be at least 44800 bytes"):
        lanczos_eigenpairs(lambda v: A @ v, 400, k=3, memory_budget=8 * vector)


def test_memory_budget_bounds_the_live_vectors():
    # Counted independently of the accounting: every tensor of shape (dim,) alive (gc)
    # at each product, the operand included, the product's own output excluded.
    import gc
    import warnings

    dim, k = 300, 4
    lam = torch.cat([torch.tensor([5.0, 4.9, 4.8, 4.7]), torch.linspace(0.0, 4.0, dim - 4)])
    A = torch.diag(lam.double())
    live = []

    def mv(v):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gc also lists deprecated torch objects
            objects = gc.get_objects()
            live.append(sum(isinstance(o, torch.Tensor) and o.shape == (dim,) for o in objects))
        return A @ v

    budget = 20
    r = lanczos_eigenpairs(mv, dim, k=k, tol=1e-6, memory_budget=budget * dim * 8)
    assert r.converged
    assert max(live) <= budget


def test_residuals_are_true_residuals_in_float32():
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    lam = torch.cat(
        [torch.tensor([5.0, 5.0, 4.0]), torch.rand(297, generator=g, dtype=torch.float64)]
    )
    A = ((Q * lam) @ Q.T).float()
    r = lanczos_eigenpairs(lambda v: A @ v, 300, k=3, tol=1e-5, dtype=torch.float32)
    true = (A @ r.eigenvectors - r.eigenvectors * r.eigenvalues).norm(dim=0)
    # The relation's residual equals the true one up to float32 rounding of ||A||
    # (a few eps_32 * 5 * sqrt(300) ~ 1e-5), and neither claims below that floor.
    assert r.converged
    assert torch.allclose(r.residuals, true, atol=3e-5)
    assert torch.allclose(
        r.eigenvalues.double(), torch.tensor([5.0, 5.0, 4.0], dtype=torch.float64), atol=1e-4
    )


def test_tridiagonal_start_vector_is_checked_in_one_line():
    from dltheory.curvature import lanczos_tridiagonal

    a = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    for v0, exc, text in (
        (None, TypeError, "v0 must be"),
        (torch.ones(5, dtype=torch.float64), ValueError, "v0 must be a vector that matvec accepts"),
        (torch.ones(6, 1, dtype=torch.float64), ValueError, "v0 must be a 1-D array"),
        (torch.zeros(6, dtype=torch.float64), ValueError, "v0 must be a non-zero start vector"),
        (torch.ones(6, dtype=torch.bool), TypeError, "v0 must be an array of real numbers"),
    ):
        with pytest.raises(exc, match=text):
            lanczos_tridiagonal(lambda v: a @ v, v0, 3)
    # a NumPy start vector works like the tensor: alpha_1 = v^T A v / v^T v = 3.5
    alphas, _ = lanczos_tridiagonal(lambda v: a @ v, np.ones(6), 3)
    assert float(alphas[0]) == pytest.approx(3.5, rel=1e-14)


def test_sizes_are_refused_before_allocating():
    from dltheory.curvature import hutchpp_trace, lanczos_eigenpairs, spectral_density

    for call in (
        lambda: lanczos_eigenpairs(lambda v: v, 10**12, k=1),
        lambda: hutchpp_trace(lambda v: v, 10**12, n_matvecs=30),
        lambda: spectral_density(lambda v: v, 10**12),
    ):
        with pytest.raises(ValueError, match="dim must be small enough for the memory budget"):
            call()
