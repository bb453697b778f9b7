"""Lanczos with full reorthogonalisation and a certified stopping rule.

For a symmetric operator A and a start vector q_1, Lanczos builds an orthonormal
basis Q_m of the Krylov space span{q_1, A q_1, ..., A^{m-1} q_1} with
A Q_m = Q_m T_m + beta_m q_{m+1} e_m^T, T_m tridiagonal (Lanczos 1950; Golub & Van
Loan, "Matrix Computations", 4th ed., Sec. 10.1). A Ritz pair (theta, y = Q_m s) of
T_m s = theta s has residual ||A y - theta y|| = beta_m |e_m^T s| (exactly, with the
basis kept orthonormal to working precision: here by classical Gram-Schmidt applied
twice at every step). Every Ritz value lies within its residual of an eigenvalue of
A (Parlett, "The Symmetric Eigenvalue Problem", Thm. 4.5.1), so stopping when
||A y - theta y|| <= tol |theta| certifies |theta - lambda| <= tol |theta|.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch

from .._checks import check_choice, check_int, check_positive, message
from ._data import generator_from

__all__ = ["EigenResult", "lanczos_eigenpairs", "lanczos_tridiagonal"]

Which = Literal["largest", "smallest", "magnitude"]


class EigenResult(NamedTuple):
    """Eigenpairs from Lanczos.

    Attributes:
        eigenvalues: (k,) Ritz values, ordered by ``which`` (largest first,
            smallest first, or largest magnitude first).
        eigenvectors: (dim, k) orthonormal Ritz vectors as columns, or None.
        residuals: (k,) ||A y - theta y|| of each pair (the Lanczos identity).
        n_matvecs: operator products used.
        converged: every residual <= tol * |theta| (or the Krylov space is exhausted).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    residuals: torch.Tensor
    n_matvecs: int
    converged: bool


def lanczos_eigenpairs(
    matvec: Callable[[torch.Tensor], torch.Tensor] | Any,
    dim: int,
    *,
    k: int = 6,
    which: Which = "largest",
    tol: float = 1e-6,
    v0: torch.Tensor | None = None,
    max_matvecs: int | None = None,
    seed: int | torch.Generator | None = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    return_eigenvectors: bool = True,
) -> EigenResult:
    """k extreme eigenpairs of a symmetric operator, certified by their residuals.

    Stops as soon as every requested Ritz pair has ||A y - theta y|| <= tol * |theta|
    (a pair whose theta is at rounding level, |theta| <= 1e3 eps ||T_m||, needs only
    ||A y - theta y|| <= tol * ||T_m||), or when ``max_matvecs`` is spent
    (``converged=False``). Full reorthogonalisation keeps the Ritz values free of
    spurious copies (Golub & Van Loan, Sec. 10.3).

    Args:
        matvec: v (dim,) -> A v (dim,), A symmetric; or an object with ``.matvec``.
        dim: the operator's size.
        k: number of eigenpairs, 1 <= k <= dim.
        which: "largest" / "smallest" (algebraic) or "magnitude" (largest |lambda|).
        tol: relative residual tolerance, > 0.
        v0: start vector (dim,) (e.g. the previous top eigenvector: a warm start);
            default a Gaussian vector from ``seed``.
        max_matvecs: budget of products; default min(dim, max(300, 20 k)).
        seed: int or torch.Generator for the random start and restarts.
        dtype, device: of the Krylov basis (the operator's own, usually).
        return_eigenvectors: also return the (dim, k) Ritz vectors.

    Returns:
        :class:`EigenResult`.

    >>> A = torch.diag(torch.arange(1.0, 101.0, dtype=torch.float64))
    >>> r = lanczos_eigenpairs(lambda v: A @ v, 100, k=3, tol=1e-10)
    >>> [round(e, 9) for e in r.eigenvalues.tolist()], r.converged
    ([100.0, 99.0, 98.0], True)
    """
    op = matvec.matvec if hasattr(matvec, "matvec") else matvec
    if not callable(op):
        raise TypeError(message("matvec", "a callable v -> A v", type(matvec).__name__))
    dim = check_int("dim", dim, minimum=1)
    k = check_int("k", k, minimum=1)
    if k > dim:
        raise ValueError(message("k", f"at most dim = {dim}", k, "Ask for fewer eigenpairs"))
    which = check_choice("which", which, ("largest", "smallest", "magnitude"))
    tol = check_positive("tol", tol)
    if max_matvecs is None:
        max_matvecs = min(dim, max(300, 20 * k))
    max_matvecs = check_int("max_matvecs", max_matvecs, minimum=1)
    m_max = min(max_matvecs, dim)
    gen = generator_from(seed)
    if v0 is None:
        q = torch.randn(dim, generator=gen, dtype=dtype, device=gen.device).to(device)
    else:
        q = _check_v0(v0, dim, dtype, device)
    device = q.device
    Q = torch.empty(m_max, dim, dtype=dtype, device=device)
    alphas: list[float] = []
    betas: list[float] = []  # betas[j] couples q_j and q_{j+1}
    Q[0] = q / q.norm()
    eps = torch.finfo(dtype).eps
    n_matvecs = 0
    theta = s = residuals = sel = None
    converged = False
    for j in range(m_max):
        w = op(Q[j])
        n_matvecs += 1
        if not isinstance(w, torch.Tensor) or w.shape != (dim,):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(message("matvec", f"a map to vectors of shape ({dim},)", shape))
        w = w.to(dtype=dtype, device=device)
        if not bool(torch.isfinite(w).all()):
            raise ValueError(message("matvec", "finite", "a product with NaN or inf entries"))
        alpha = float(Q[j] @ w)
        alphas.append(alpha)
        # Three-term recurrence, then Gram-Schmidt against the whole basis, twice.
        w = w - alpha * Q[j]
        if j > 0:
            w = w - betas[j - 1] * Q[j - 1]
        basis = Q[: j + 1]
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        theta, s = _tridiagonal_eigh(alphas, betas, dtype)
        sel = _select(theta, k, which)
        residuals = beta * s[-1, sel].abs()
        scale = float(theta.abs().max())
        floor = max(scale, 1e-300)
        thresh = tol * theta[sel].abs()
        tiny = theta[sel].abs() <= 1e3 * eps * floor
        thresh = torch.where(tiny, torch.full_like(thresh, tol * floor), thresh)
        if len(sel) == k and bool((residuals <= thresh).all()):
            converged = True
            break
        if j + 1 == m_max:
            converged = m_max == dim and len(sel) == k
            break
        if beta <= 100 * eps * max(floor, abs(alpha)):
            # Invariant subspace found: restart with a random vector orthogonal to it.
            w = torch.randn(dim, generator=gen, dtype=dtype, device=gen.device).to(device)
            for _ in range(2):
                w = w - basis.T @ (basis @ w)
            betas.append(0.0)
            Q[j + 1] = w / w.norm()
        else:
            betas.append(beta)
            Q[j + 1] = w / beta
    m = len(alphas)
    vectors = (Q[:m].T @ s[:, sel].to(device)) if return_eigenvectors else None
    return EigenResult(theta[sel].to(device), vectors, residuals.to(device), n_matvecs, converged)


def lanczos_tridiagonal(
    matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Lanczos tridiagonal T_m (diagonal alphas, off-diagonal betas) from v0.

    ``steps`` products with full reorthogonalisation; stops early (a shorter T) when
    the Krylov space is invariant, where Gauss quadrature with T is already exact.
    Used by stochastic Lanczos quadrature: v0^T f(A) v0 / |v0|^2 ~ e_1^T f(T) e_1.

    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> a, b = lanczos_tridiagonal(lambda v: A @ v, torch.ones(3, dtype=torch.float64), 3)
    >>> round(float(a[0]), 12)  # e_1^T T e_1 = v^T A v / v^T v = 2
    2.0
    """
    steps = check_int("steps", steps, minimum=1)
    dim = v0.shape[0]
    steps = min(steps, dim)
    Q = torch.empty(steps, dim, dtype=v0.dtype, device=v0.device)
    Q[0] = v0 / v0.norm()
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(v0.dtype).eps
    for j in range(steps):
        w = matvec(Q[j])
        alpha = float(Q[j] @ w)
        alphas.append(alpha)
        w = w - alpha * Q[j] - (betas[j - 1] * Q[j - 1] if j > 0 else 0.0)
        basis = Q[: j + 1]
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        if j + 1 == steps or beta <= 100 * eps * max(scale, 1e-300):
            break
        betas.append(beta)
        Q[j + 1] = w / beta
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64)


def _tridiagonal_eigh(alphas: list[float], betas: list[float], dtype: torch.dtype):
    m = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(betas[: m - 1], dtype=torch.float64)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    theta, s = torch.linalg.eigh(T)
    return theta.to(dtype), s.to(dtype)


def _select(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    kk = min(k, theta.numel())
    if which == "largest":
        return torch.argsort(theta, descending=True)[:kk]
    if which == "smallest":
        return torch.argsort(theta)[:kk]
    return torch.argsort(theta.abs(), descending=True)[:kk]


def _check_v0(v0: Any, dim: int, dtype: torch.dtype, device: Any) -> torch.Tensor:
    if not isinstance(v0, torch.Tensor):
        raise TypeError(message("v0", "a torch.Tensor", type(v0).__name__))
    if v0.shape != (dim,):
        raise ValueError(message("v0", f"of shape ({dim},)", tuple(v0.shape)))
    v0 = v0.detach().to(dtype=dtype, device=device if device is not None else v0.device)
    norm = float(v0.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(message("v0", "a finite non-zero vector", norm))
    return v0
