"""Hard-margin SVM through the origin: the direction logistic GD converges to.

max-margin problem (Soudry et al. 2018, Eq. (4)):

    w_hat = argmin 1/2 |w|^2  subject to  y_i w . x_i >= 1 for all i,

solved through its dual QP

    min_{a >= 0} 1/2 |sum_i a_i y_i x_i|^2 - sum_i a_i,   w_hat = sum_i a_i y_i x_i,

The primal is a least-distance program (LDP) in d dimensions, which Lawson &
Hanson (1974, *Solving Least Squares Problems*, Ch. 23) reduce to a
non-negative least-squares problem with n variables and d + 1 rows:

    u = argmin_{u >= 0} |E u - f|^2,   E = [Z^T; 1^T] ((d + 1, n)),  f = e_{d+1},
    r = E u - f,   w_hat = -r_{1..d} / r_{d+1} = Z^T u / (1 - 1^T u),  a = u / (1 - 1^T u),

(r = 0 would mean the constraints are infeasible). The NNLS active set holds
about d points, so its cost is O(n d) per step and a few steps: milliseconds
for n = 10^4, d = 5 where a dual QP over all n multipliers takes minutes. An
exact active-set polish follows (solve the support equations y_i w . x_i = 1 on
the support set, add violated points, drop negative multipliers), and the
result is checked against the KKT conditions (margins >= 1, a >= 0,
a_i (y_i w . x_i - 1) = 0). The geometric margin is 1 / |w_hat|; support vectors
are the points with a_i > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog, nnls

from .._checks import check_bytes, check_int, check_positive, message
from ._validate import design, labels_pm1

__all__ = ["MaxMargin", "max_margin", "max_margin_direction", "separable_dataset"]

_KKT_TOL = 1e-8


@dataclass(frozen=True)
class MaxMargin:
    """The hard-margin SVM through the origin.

    Attributes:
        w: (d,) the max-margin vector w_hat (margins y_i w . x_i >= 1, equality on support).
        margin: the geometric margin gamma = 1 / |w_hat|.
        dual: (n,) the dual variables a_i >= 0 (w_hat = sum_i a_i y_i x_i).
        support: indices of the support vectors (a_i > 0).
        margins: (n,) functional margins y_i w_hat . x_i.
    """

    w: torch.Tensor
    margin: float
    dual: torch.Tensor
    support: torch.Tensor
    margins: torch.Tensor


def _check_separable(Z: np.ndarray) -> None:
    res = linprog(
        np.zeros(Z.shape[1]), A_ub=-Z, b_ub=-np.ones(Z.shape[0]), bounds=(None, None),
        method="highs",
    )  # fmt: skip
    if res.status == 2:
        raise ValueError(
            message(
                "X, y",
                "linearly separable through the origin (some w with y_i w . x_i > 0 for all i)",
                "a non-separable data set",
                "Logistic GD then has a finite minimiser and no max-margin limit",
            )
        )


def _ldp_dual(Z: np.ndarray) -> np.ndarray:
    """Dual a of min |w|^2 / 2 s.t. Z w >= 1 by Lawson & Hanson's LDP -> NNLS reduction."""
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[d] = 1.0
    u, _ = nnls(E, f, maxiter=max(100, 10 * n))
    denominator = 1.0 - u.sum()  # -r_{d+1}; 0 only for infeasible constraints
    if not denominator > 0:
        raise RuntimeError("max_margin: the NNLS reduction found no feasible direction")
    return u / denominator


def _polish(Z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Exact active-set refinement of an approximate dual solution."""
    n = Z.shape[0]
    support = set(np.flatnonzero(a > 1e-6 * max(a.max(), 1e-300)).tolist())
    for _ in range(4 * n + 10):
        idx = np.array(sorted(support), dtype=int)
        a = np.zeros(n)
        if idx.size:
            zs = Z[idx]
            a[idx] = np.linalg.lstsq(zs @ zs.T, np.ones(idx.size), rcond=None)[0]
        if idx.size and a[idx].min() < 0:
            support.discard(int(idx[np.argmin(a[idx])]))
            continue
        m = Z @ (Z.T @ a)
        outside = np.setdiff1d(np.arange(n), idx)
        if outside.size and m[outside].min() < 1 - 1e-12:
            support.add(int(outside[np.argmin(m[outside])]))
            continue
        return a
    raise RuntimeError("max_margin: the active-set polish did not converge")


def max_margin(X: Any, y: Any) -> MaxMargin:
    """The hard-margin SVM through the origin (no bias), with its dual and support vectors.

    Args:
        X: (n, d) inputs; y: (n,) labels in {-1, +1}, linearly separable through 0.

    Returns:
        A :class:`MaxMargin` satisfying the KKT conditions to 1e-8.

    Raises:
        ValueError: bad shapes or labels, or data not separable through the origin.

    >>> X = torch.tensor([[1.0, 1.0], [1.0, -1.0], [3.0, 0.0]], dtype=torch.float64)
    >>> res = max_margin(X, [1, 1, 1])  # w_hat = (1, 0), margin 1
    >>> [round(v, 12) for v in res.w.tolist()], round(res.margin, 12), res.support.tolist()
    ([1.0, 0.0], 1.0, [0, 1])
    """
    X = design("X", X)
    y = labels_pm1("y", y, X.shape[0])
    Z = (y[:, None] * X).numpy()
    _check_separable(Z)
    a = _polish(Z, _ldp_dual(Z))
    w = Z.T @ a
    m = Z @ w
    if m.min() < 1 - _KKT_TOL or a.min() < 0 or np.abs(a * (m - 1)).max() > _KKT_TOL:
        raise RuntimeError("max_margin: the solution failed the KKT check")
    return MaxMargin(
        torch.from_numpy(w),
        1.0 / float(np.linalg.norm(w)),
        torch.from_numpy(a),
        torch.from_numpy(np.flatnonzero(a > 0)),
        torch.from_numpy(m),
    )


def max_margin_direction(X: Any, y: Any) -> torch.Tensor:
    """The max-margin vector w_hat of the hard-margin SVM through the origin.

    See :func:`max_margin` (this returns its ``w``; the direction is w / |w| and
    |w| = 1 / margin).

    >>> max_margin_direction([[2.0, 0.0], [-1.0, 0.0]], [1, -1]).tolist()
    [1.0, 0.0]
    """
    return max_margin(X, y).w


def separable_dataset(n: int, d: int = 2, margin: float = 0.5, *, gap: float = 0.5, seed: int = 0):
    """A data set with a known max-margin solution w_hat = u / margin.

    Points z_k = y_k x_k: d support vectors z_k = margin * u + r_k s_k with s_k
    the unit vertices of a regular simplex orthogonal to u and random radii
    r_k in [0.5, 2], then n - d points with z . u >= margin + gap; labels are
    random signs and everything is rotated by a random orthogonal matrix. The
    KKT conditions hold with a_k = (1 / r_k) / (margin^2 sum_j 1 / r_j) > 0 on
    the support vectors (sum_k a_k r_k s_k = 0), so w_hat = u / margin exactly.

    Args:
        n: number of points (>= d); d: dimension (>= 2); margin: gamma > 0;
        gap: extra margin of the non-support points; seed: randomness.

    Returns:
        (X (n, d), y (n,), w_hat (d,)) float64 tensors; the first d rows are the support vectors.

    >>> X, y, w_hat = separable_dataset(10, 3, margin=0.25)
    >>> bool((max_margin_direction(X, y) - w_hat).abs().max() < 1e-9)
    True
    """
    n = check_int("n", n, minimum=2)
    d = check_int("d", d, minimum=2)
    check_bytes("n, d", 8.0 * (n + d) * (d + 3))
    if n < d:
        raise ValueError(message("n", f"at least d = {d} (the support vectors)", n))
    margin = check_positive("margin", margin)
    gap = check_positive("gap", gap)
    g = torch.Generator().manual_seed(check_int("seed", seed))
    u = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64)
    simplex = torch.eye(d, dtype=torch.float64) - 1.0 / d
    radii = 0.5 + 1.5 * torch.rand(d, 1, generator=g, dtype=torch.float64)
    support = margin * u + radii * simplex / simplex.norm(dim=1, keepdim=True)
    along = margin + gap + torch.rand(n - d, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(n - d, d, generator=g, dtype=torch.float64)
    noise = noise - (noise @ u)[:, None] * u
    z = torch.cat([support, along * u + noise])
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    y = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    y[0] = 1.0
    return (y[:, None] * z) @ q.T, y, (u / margin) @ q.T
