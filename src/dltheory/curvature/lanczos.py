"""Thick-restart Lanczos with deflation, certified by residuals.

For a symmetric operator A, a Rayleigh-Ritz method keeps an orthonormal basis
V_m = [v_1, ..., v_m] and takes Ritz pairs
(theta, y = V_m s) from the projected matrix V_m^T A V_m s = theta s. Expanding the
basis by the residual of a Ritz pair is Lanczos in exact arithmetic (every Ritz
residual of a Krylov space points along the next Lanczos vector; Golub & Van Loan,
"Matrix Computations", 4th ed., Sec. 10.1). When the basis is full it is restarted
with the best Ritz vectors, as in thick-restart Lanczos (Wu & Simon 2000, "Thick-restart
Lanczos method for large symmetric eigenvalue problems"; Stathopoulos & Saad 1998).

The products are not stored: each A v is folded, as it arrives, into the projected
matrix G = V_m^T A V_m and the Lanczos relation A V_m = V_m G + Q C^T (Q orthonormal,
orthogonal to V_m, one column for a plain Krylov space and one more for each random
vector added below). The residual of a pair (theta, y = V_m s) is then
||A y - theta y|| = ||C^T s||: the true residual as far as the relation holds, which
full reorthogonalisation keeps to a few eps ||A|| per column, so the certificate has
a floor at that level and never claims a residual below working precision. The basis
costs m + q vectors, half of what keeping the products would. Every Ritz value lies
within its residual of an eigenvalue
(Parlett, "The Symmetric Eigenvalue Problem", Thm. 4.5.1), and k orthonormal Ritz
vectors with residuals r_i certify k eigenvalues, multiplicity counted, within
sqrt(sum r_i^2) (Kahan's theorem, Parlett Thm. 11.5.1).

A single Krylov sequence sees one copy of a repeated eigenvalue only (the start
vector's projection on the eigenspace). Each time a new wanted pair converges, a fresh
random vector orthogonal to the basis is added (deflation by locking, then restart in
the complement): further copies of converged eigenvalues then enter the space with
probability one and are found with their multiplicity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_int,
    check_positive,
    message,
)
from ._data import generator_from

__all__ = ["EigenResult", "lanczos_eigenpairs", "lanczos_tridiagonal"]

Which = Literal["largest", "smallest", "magnitude"]
_BLOCK = 1 << 16  # columns per block when combining basis vectors in place
_WORK = 4  # vectors beyond the basis and the residual directions: the product, its
# reduced copy, the expansion vector, a combination


def _vectors(max_basis: int) -> int:
    """Vectors of size dim held at most: the basis, the residual directions Q of the
    Lanczos relation (at most max_basis: compressed to the kept Ritz vectors' rank at
    each restart, one more per product in between) and ``_WORK``."""
    return 2 * max_basis + _WORK


class EigenResult(NamedTuple):
    """Eigenpairs from Lanczos.

    Attributes:
        eigenvalues: (k,) Ritz values, ordered by ``which`` (largest first,
            smallest first, or largest magnitude first).
        eigenvectors: (dim, k) orthonormal Ritz vectors as columns, or None.
        residuals: (k,) residuals ||A y - theta y|| of each pair from the Lanczos
            relation, which holds to a few eps ||A|| (module docstring).
        n_matvecs: operator products used.
        converged: every residual <= max(tol |theta|, floor), floor about
            eps(dtype) ||A|| (see :func:`lanczos_eigenpairs`).
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
    max_basis: int | None = None,
    memory_budget: float | None = None,
) -> EigenResult:
    """k extreme eigenpairs of a symmetric operator, each certified by its true residual.

    Stops when every requested pair has ||A y - theta y|| <= max(tol |theta|, floor)
    with floor = 10 sqrt(m) eps(dtype) ||T|| (||T|| the largest |Ritz value|, m the
    basis size): the rounding level of the residual itself, so a float32 run cannot
    claim residuals below float32 precision. Stops unconverged when ``max_matvecs``
    is spent. Repeated eigenvalues come out with their multiplicity (module docstring).

    Memory: at most ``2 max_basis + 4`` vectors of size dim (the basis, at most
    max_basis residual directions of the Lanczos relation, the product being folded in
    and its reduced copy, the expansion vector and one combination), grown one vector per
    product, never allocated up front.

    Args:
        matvec: v (dim,) -> A v (dim,), A symmetric; or an object with ``.matvec``.
        dim: the operator's size.
        k: number of eigenpairs, 1 <= k <= dim.
        which: "largest" / "smallest" (algebraic) or "magnitude" (largest |lambda|).
        tol: relative residual tolerance, > 0.
        v0: start vector (dim,) (e.g. the previous top eigenvector: a warm start);
            default a Gaussian vector from ``seed``.
        max_matvecs: budget of products; default max(300, 20 k).
        seed: int or torch.Generator for the random start and the deflation vectors.
        dtype, device: of the basis (the operator's own, usually).
        return_eigenvectors: also return the (dim, k) Ritz vectors.
        max_basis: basis size at which the basis restarts (thick restart, keeping the
            best Ritz vectors); default from ``memory_budget``, else 300 vectors or
            fewer so that the basis takes at most 2^25 numbers, but at least
            max(20, 2 k + 2).
        memory_budget: bytes for the basis and its work vectors: max_basis is then
            (budget / (dim * itemsize) - 4) / 2 (at most 300); a one-line error when
            fewer than k + 2 basis vectors fit.

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
    max_matvecs = check_int(
        "max_matvecs", max(300, 20 * k) if max_matvecs is None else max_matvecs, minimum=1
    )
    if max_basis is None and memory_budget is not None:
        memory_budget = check_positive("memory_budget", memory_budget)
        vector = dim * torch.empty((), dtype=dtype).element_size()
        max_basis = min(300, (int(memory_budget // vector) - _WORK) // 2)
        if max_basis < k + 2:
            raise ValueError(
                message(
                    "memory_budget",
                    f"at least {_vectors(k + 2) * vector} bytes ({k + 2} basis vectors, as "
                    f"many residual directions and {_WORK} work vectors of {vector} bytes)",
                    int(memory_budget),
                    "Raise it or ask for fewer eigenpairs",
                )
            )
    if max_basis is None:
        max_basis = max(min(300, (1 << 25) // dim), 20, 2 * k + 2)
    max_basis = min(check_int("max_basis", max_basis, minimum=k + 2), dim)
    item = torch.empty((), dtype=dtype).element_size()
    check_bytes("dim", float(item) * dim * _vectors(k + 2), fix="Use a smaller operator")
    gen = generator_from(seed)
    if v0 is None:
        start = torch.randn(dim, generator=gen, dtype=dtype, device=gen.device).to(device)
    else:
        start = _check_v0(v0, dim, dtype, device)
    basis = _Basis(op, dim, dtype, start.device)
    basis.add(start / start.norm())
    eps = torch.finfo(dtype).eps
    n_locked = 0
    while True:
        theta, S = torch.linalg.eigh(basis.projected())
        order = _order(theta, which)
        m = len(basis)
        floor = 10.0 * math.sqrt(m) * eps * max(float(theta.abs().max()), 1e-300)
        # Walk the wanted pairs in priority order; the first unconverged one expands.
        expand, n_ok, residuals = None, 0, []
        for i in order[: min(k, m)].tolist():
            res = basis.residual_norm(S[:, i])
            residuals.append(res)
            if res > max(tol * abs(float(theta[i])), floor):
                expand = basis.residual(S[:, i])
                break
            n_ok += 1
        converged = n_ok == k
        if converged or m == dim or basis.n_matvecs >= max_matvecs:
            break
        random_expand = n_ok > n_locked or expand is None
        if random_expand:
            # A new pair converged (or all found so far did): add a random vector so
            # further copies of its eigenvalue can enter the space.
            n_locked = n_ok
            expand = torch.randn(dim, generator=gen, dtype=dtype, device=gen.device)
        if m == max_basis:
            keep = order[: max(k + 1, (max_basis + k) // 2)]
            basis.restart(S[:, keep])
        # A residual is orthogonal to the basis already: one pass keeps it so.
        passes = 1 if not random_expand else 2
        vec = basis.orthonormal(expand.to(device=basis.device), passes)
        while vec is None:  # the residual lay in the space: restart from random
            noise = torch.randn(dim, generator=gen, dtype=dtype, device=gen.device)
            vec = basis.orthonormal(noise.to(device=basis.device))
        expand = noise = None  # freed before the product (memory_budget counts on it)
        basis.add(vec)
    sel = order[:k]
    res_all = [
        residuals[j] if j < len(residuals) else basis.residual_norm(S[:, i])
        for j, i in enumerate(sel.tolist())
    ]
    basis.Q.clear()  # the residual directions are no longer needed: free them first
    vectors = None
    if return_eigenvectors:
        vectors = torch.empty(dim, len(sel), dtype=dtype, device=basis.device)
        for j, i in enumerate(sel.tolist()):
            vectors[:, j] = basis.combine(S[:, i])
    return EigenResult(
        theta[sel].to(dtype=dtype, device=basis.device),
        vectors,
        torch.tensor(res_all, dtype=dtype, device=basis.device),
        basis.n_matvecs,
        converged,
    )


class _Basis:
    """Orthonormal vectors V, G = V^T A V (float64) and the Lanczos relation
    A V = V G + Q C^T, Q orthonormal and orthogonal to V (q columns, q = 1 for a plain
    Krylov space, one more per random vector added), C (m, q) float64.

    The products A v are not kept: each is folded into G and Q as it arrives, so the
    basis costs m + q vectors of size dim, not 2 m.
    """

    def __init__(self, op: Callable, dim: int, dtype: torch.dtype, device: Any) -> None:
        self.op, self.dim, self.dtype, self.device = op, dim, dtype, device
        self.V: list[torch.Tensor] = []
        self.Q: list[torch.Tensor] = []
        self.G = torch.zeros(0, 0, dtype=torch.float64)
        self.C = torch.zeros(0, 0, dtype=torch.float64)
        self.n_matvecs = 0
        self.eps = torch.finfo(dtype).eps

    def __len__(self) -> int:
        return len(self.V)

    def add(self, v: torch.Tensor) -> None:
        """Append v (unit, orthogonal to V) and fold A v into G, Q, C."""
        w = self.op(v)
        self.n_matvecs += 1
        if not isinstance(w, torch.Tensor) or w.shape != (self.dim,):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(message("matvec", f"a map to vectors of shape ({self.dim},)", shape))
        w = w.detach().to(dtype=self.dtype, device=self.device)
        if not bool(torch.isfinite(w).all()):
            raise ValueError(message("matvec", "finite", "a product with NaN or inf entries"))
        w = w.clone()  # reduced in place below; the caller's tensor stays intact
        m, q = len(self.V), len(self.Q)
        # The old relation's residual directions along v: A V_old = V_old G + Q C^T
        # has components (Q^T v) on v, which become G's new row (= V_old^T A v).
        a = torch.tensor([float(u @ v) for u in self.Q], dtype=torch.float64)
        for c, u in zip(a.tolist(), self.Q, strict=True):
            u.sub_(v, alpha=c)
        # w = V h + alpha v + w_perp (Gram-Schmidt twice).
        basis = [*self.V, v]
        h = torch.zeros(m + 1, dtype=torch.float64)
        norm = float(w.norm())
        for _ in range(2):  # a second pass only when the first cancelled much (DGKS)
            for i, u in enumerate(basis):
                c = float(u @ w)
                h[i] += c
                w.sub_(u, alpha=c)
            norm, before = float(w.norm()), norm
            if norm > 0.7 * before:
                break
        row = h[:m] if q == 0 else 0.5 * (h[:m] + self.C @ a)
        G = torch.zeros(m + 1, m + 1, dtype=torch.float64)
        G[:m, :m] = self.G
        G[m, :m] = G[:m, m] = row
        G[m, m] = h[m]
        self.G = G
        self.V.append(v)
        # New residual set [Q_perp, w_perp] with coefficients [[C, 0], [0, 1]],
        # re-orthonormalised (rank-revealing Gram-Schmidt) to keep q small.
        C = torch.zeros(m + 1, q + 1, dtype=torch.float64)
        C[:m, :q] = self.C
        C[m, q] = 1.0
        cols, R = [], torch.zeros(q + 1, q + 1, dtype=torch.float64)
        for j, x in enumerate([*self.Q, w]):
            # Q's columns were unit before v was taken out: a column that lay along v
            # is measured against 1, not against its cancelled remainder (else rounding
            # noise survives as a new direction and q grows at each restart).
            norm0 = 1.0 if j < q else float(x.norm())
            for _ in range(2):
                for i, u in cols:
                    c = float(u @ x)
                    R[i, j] += c
                    x.sub_(u, alpha=c)
            norm = float(x.norm())
            if math.isfinite(norm) and norm > 1e2 * self.eps * norm0 and norm > 0:
                R[j, j] = norm
                cols.append((j, x.div_(norm)))
        keep = [j for j, _ in cols]
        self.Q = [x for _, x in cols]
        self.C = (C @ R.T)[:, keep]

    def projected(self) -> torch.Tensor:
        return self.G

    def residual_norm(self, s: torch.Tensor) -> float:
        """||A V s - theta V s|| = ||Q C^T s|| for an eigenvector s of G."""
        return float((self.C.T @ s).norm()) if len(self.Q) else 0.0

    def residual(self, s: torch.Tensor) -> torch.Tensor | None:
        """The residual vector Q C^T s (None when the space is invariant)."""
        if not self.Q:
            return None
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for c, u in zip((self.C.T @ s).tolist(), self.Q, strict=True):
            out.add_(u, alpha=c)
        return out

    def combine(self, s: torch.Tensor) -> torch.Tensor:
        """V s."""
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for c, v in zip(s.tolist(), self.V, strict=True):
            out.add_(v, alpha=c)
        return out

    def orthonormal(self, x: torch.Tensor, passes: int = 2) -> torch.Tensor | None:
        """x orthogonalised against the basis (Gram-Schmidt, ``passes`` times),
        normalised; None if x lies in the basis' span to working precision."""
        x = x.to(self.dtype).clone()
        norm0 = float(x.norm())
        for _ in range(passes):
            for v in self.V:
                x.sub_(v, alpha=float(v @ x))
        norm = float(x.norm())
        if not math.isfinite(norm) or norm <= 1e3 * self.eps * norm0:
            return None
        return x.div_(norm)

    def restart(self, S: torch.Tensor) -> None:
        """V <- V S (S: orthonormal eigenvectors of G), in place, block by block; the
        relation keeps its form with C <- S^T C since G S = S Theta."""
        p = S.shape[1]
        St = S.T.to(dtype=self.dtype, device=self.device)
        for a in range(0, self.dim, _BLOCK):
            block = torch.stack([u[a : a + _BLOCK] for u in self.V])
            new = St @ block
            for i in range(p):
                self.V[i][a : a + _BLOCK] = new[i]
        del self.V[p:]
        self.G = S.T @ self.G @ S
        self.C = S.T @ self.C
        self._compress_residuals()

    def _compress_residuals(self) -> None:
        """Q C^T = (Q W)(U Sigma)^T with C = U Sigma W^T (thin SVD): after a restart C has
        only p rows, so at most p directions of Q carry the relation; the others
        (their singular values are zero) are dropped. Without this, an expansion by a
        Ritz residual that mixes Q's directions leaves them all, one more per product."""
        q = len(self.Q)
        if q <= self.C.shape[0]:
            return
        U, sigma, Wt = torch.linalg.svd(self.C, full_matrices=False)
        top = float(sigma[0]) if len(sigma) else 0.0
        r = int((sigma > 2 * q * torch.finfo(torch.float64).eps * top).sum())
        W = Wt[:r].T.to(dtype=self.dtype, device=self.device)  # (q, r), orthonormal columns
        for a in range(0, self.dim, _BLOCK):
            block = torch.stack([u[a : a + _BLOCK] for u in self.Q])
            new = W.T @ block
            for i in range(r):
                self.Q[i][a : a + _BLOCK] = new[i]
        del self.Q[r:]
        self.C = U[:, :r] * sigma[:r]


def lanczos_tridiagonal(
    matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Lanczos tridiagonal T_m (diagonal alphas, off-diagonal betas) from v0.

    ``steps`` products with full reorthogonalisation (the basis grows one vector per
    step); stops early (a shorter T) when the Krylov space is invariant, where Gauss
    quadrature with T is already exact. Used by stochastic Lanczos quadrature:
    v0^T f(A) v0 / |v0|^2 ~ e_1^T f(T) e_1.

    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> a, b = lanczos_tridiagonal(lambda v: A @ v, torch.ones(3, dtype=torch.float64), 3)
    >>> round(float(a[0]), 12)  # e_1^T T e_1 = v^T A v / v^T v = 2
    2.0
    """
    steps = check_int("steps", steps, minimum=1)
    if not callable(matvec):
        raise TypeError(message("matvec", "a callable v -> A v", matvec))
    v0 = as_float_tensor("v0", v0, ndim=1)
    if not bool(v0.any()):
        raise ValueError(message("v0", "a non-zero start vector", "all zeros"))
    dim = v0.shape[0]
    steps = min(steps, dim)
    Q = [v0 / v0.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(v0.dtype).eps
    for j in range(steps):
        w = matvec(Q[j]) if j else _first_product(matvec, Q[0])
        if not bool(torch.isfinite(w).all()):
            raise ValueError(message("matvec", "finite", "a product with NaN or inf entries"))
        alpha = float(Q[j] @ w)
        alphas.append(alpha)
        w = w - alpha * Q[j] - (betas[j - 1] * Q[j - 1] if j > 0 else 0.0)
        for _ in range(2):
            for q in Q:
                w.sub_(q, alpha=float(q @ w))
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        if j + 1 == steps or beta <= 100 * eps * max(scale, 1e-300):
            break
        betas.append(beta)
        Q.append(w / beta)
    return torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64)


def _order(theta: torch.Tensor, which: str) -> torch.Tensor:
    """Indices of the Ritz values in priority order."""
    if which == "largest":
        return torch.argsort(theta, descending=True)
    if which == "smallest":
        return torch.argsort(theta)
    return torch.argsort(theta.abs(), descending=True)


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


def _first_product(matvec: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """matvec(v), with a one-line error naming v0 when matvec refuses it or answers in
    another shape (a start vector of the wrong length or dtype)."""
    try:
        w = matvec(v)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            message(
                "v0",
                "a vector that matvec accepts",
                f"shape {tuple(v.shape)}, dtype {v.dtype}",
                f"matvec raised: {first}",
            )
        ) from err
    if not isinstance(w, torch.Tensor) or w.shape != v.shape:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(message("matvec", f"products of shape {tuple(v.shape)}", got))
    return w
