"""Kernel ridge coefficients by conjugate gradients on a stored Gram (no factorisation).

Solves (K + D) alpha = y for a stored N x N Gram K and D = diag(d) > 0 (the ridge, or
ridge / w_i with sample weights) by CG preconditioned with a Nystrom approximation:
F = K_nm L^-T with L L^T = K_mm on m uniformly sampled columns (K ~ F F^T), and
P = F F^T + D applied by the Woodbury identity,
P^-1 z = D^-1 z - D^-1 F (I + F^T D^-1 F)^-1 F^T D^-1 z
(Nystrom preconditioning: Frangella, Tropp & Udell 2023, "Randomized Nystrom
preconditioning", SIAM J. Matrix Anal. Appl. 44(2); CG on exact Gaussian-process
systems: Gardner et al. 2018, "GPyTorch", NeurIPS; Wang et al. 2019, "Exact Gaussian
processes on a million data points", NeurIPS). An iteration is one pass over K, O(N^2)
against the Cholesky's N^3 / 3: when the preconditioned spectrum is clustered (a ridge
that is not tiny against the kernel's tail), a few dozen passes beat the factorisation.

It stops at the normwise backward error of a backward-stable float64 solve,
||y - (K + D) alpha|| <= tol (||K + D|| ||alpha|| + ||y||) (Rigal & Gaches 1967;
Higham 2002, "Accuracy and Stability of Numerical Algorithms", Thm. 7.1), with ||K + D||
estimated from below (so the test is, if anything, stricter), and the residual
recomputed from y - (K + D) alpha before it says converged. It gives up, returning its
iterate, when the residual's observed rate of decrease predicts that reaching ``tol``
would take longer than ``budget_s`` (the caller's estimate of the factorisation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .cholesky import cholesky_in_place

__all__ = ["GramCG", "gram_cg"]


@dataclass(frozen=True)
class GramCG:
    """Result of :func:`gram_cg`: (N, k) coefficients, iterations, backward errors."""

    x: np.ndarray
    iterations: int
    residuals: tuple[float, ...]
    converged: bool
    gave_up: bool  # stopped because the predicted time exceeded the budget


def gram_cg(
    k: np.ndarray,
    y: np.ndarray,
    diag: np.ndarray,
    *,
    rank: int,
    tol: float,
    budget_s: float = math.inf,
    max_iter: int = 1000,
    seed: int = 0,
) -> GramCG:
    """(K + diag(d)) x = y by Nystrom-preconditioned CG on the stored K (module docstring).

    Args:
        k: (N, N) float64 K, both triangles filled (read, never written).
        y: (N, k) float64 right-hand sides.
        diag: (N,) float64 d > 0 added to K's diagonal.
        rank: m, Nystrom columns of the preconditioner (1 <= m <= N).
        tol: normwise backward error at which to stop.
        budget_s: give up when the predicted time to ``tol`` exceeds this (seconds).
        max_iter: at most this many iterations.
        seed: picks the Nystrom columns.
    """
    n = len(k)
    kt = torch.from_numpy(k)  # a Fortran K is K^T's C view: K symmetric, so K @ v
    d = torch.from_numpy(np.ascontiguousarray(diag, dtype=np.float64)).reshape(n, 1)
    b = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    start = time.perf_counter()
    precondition = _nystrom_woodbury(k, d, rank, seed)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(kt @ v, d, v)

    probe = torch.full((n, 1), 1.0 / math.sqrt(max(n, 1)), dtype=torch.float64)
    norm = max(
        float(torch.linalg.vector_norm(apply(probe))), float((kt.diagonal() + d[:, 0]).max())
    )
    norm_b = torch.linalg.vector_norm(b, dim=0)

    def backward_error(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        denom = norm * torch.linalg.vector_norm(x, dim=0) + norm_b
        return torch.linalg.vector_norm(r, dim=0) / torch.where(denom > 0, denom, 1.0)

    x = torch.zeros_like(b)
    r = b.clone()
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum(0)
    eta = backward_error(r, x)
    residuals: list[float] = []
    gave_up = False
    setup = time.perf_counter() - start
    loop_start = time.perf_counter()
    while float(eta.max()) > tol and len(residuals) < max_iter:
        q = apply(p)
        pq = (p * q).sum(0)
        step = torch.where(pq > 0, rz / torch.where(pq > 0, pq, 1.0), 0.0)
        x.add_(step * p)
        r.sub_(step * q)
        eta = backward_error(r, x)
        if float(eta.max()) <= tol:  # confirm with the true residual
            r = b - apply(x)
            eta = backward_error(r, x)
        residuals.append(float(eta.max()))
        if _over_budget(residuals, tol, time.perf_counter() - loop_start, budget_s - setup):
            gave_up = True
            break
        z = precondition(r)
        rz_new = (r * z).sum(0)
        p = z + torch.where(rz > 0, rz_new / torch.where(rz > 0, rz, 1.0), 0.0) * p
        rz = rz_new
    converged = float(eta.max()) <= tol
    return GramCG(x.numpy(), len(residuals), tuple(residuals), converged, gave_up and not converged)


def _over_budget(residuals: list[float], tol: float, elapsed: float, budget: float) -> bool:
    """Whether the iterations to ``tol``, extrapolated from the last five steps'
    geometric rate of decrease, would take longer than ``budget`` seconds in all."""
    it = len(residuals)
    if it < 6 or residuals[-1] <= tol:
        return elapsed > budget
    rate = (residuals[-1] / residuals[-6]) ** (1 / 5)
    if not rate < 1.0:
        return True  # no progress over five iterations
    more = math.log(tol / residuals[-1]) / math.log(rate)
    return elapsed * (1 + more / it) > budget


def _nystrom_woodbury(k: np.ndarray, d: torch.Tensor, rank: int, seed: int):
    """z -> (F F^T + D)^-1 z for F = K_nm L^-T (module docstring), set up in O(N m^2)."""
    n = len(k)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=rank, replace=False))
    k_nm = torch.from_numpy(k)[:, torch.from_numpy(idx)]  # (N, m): K's columns, gathered
    chol = cholesky_in_place(np.asfortranarray(k_nm[torch.from_numpy(idx)].numpy()))
    low = torch.from_numpy(chol.buffer).tril()
    f = torch.linalg.solve_triangular(low, k_nm.T, upper=False).T  # (N, m): K ~ F F^T
    g = f / d  # D^-1 F
    inner = f.T @ g  # F^T D^-1 F
    inner.diagonal().add_(1.0)
    inner_low = torch.linalg.cholesky(inner)

    def precondition(z: torch.Tensor) -> torch.Tensor:
        c = torch.cholesky_solve(g.T @ z, inner_low)
        return z / d - g @ c

    return precondition
