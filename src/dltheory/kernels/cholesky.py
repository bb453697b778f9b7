"""Cholesky of a kernel matrix in place, with adaptive jitter reported back.

The buffer is an N x N Fortran-ordered array holding K in both triangles. A
blocked left-looking Cholesky (Golub & Van Loan 2013, "Matrix Computations",
Sec. 4.2, block Cholesky) overwrites only the lower triangle and the diagonal
with L, 512 columns at a time: the panel is updated by one matrix product with
the columns already factorised, its diagonal block is factorised on a small copy
and the rows below it by a triangular solve, all with torch's multithreaded BLAS
on views of the one buffer. The strict upper triangle still holds K: a failed
attempt is undone by copying it back (no second N x N array), and the next
attempt adds a larger jitter to the diagonal. Memory: the one buffer and a few
N x 512 panels.

LAPACK ``potrf`` of SciPy's bundled OpenBLAS is not used: SciPy 1.17's OpenBLAS
(0.3.31) segfaults in multithreaded ``dpotrf`` at N ~ 16,500, and one BLAS
thread is twice as slow on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from .._checks import as_float_tensor, check_int, check_nonnegative, check_positive, message

__all__ = ["Cholesky", "cholesky_in_place", "jitter_schedule"]

_PANEL = 512  # columns per factorised panel, and copied at a time when restoring


def jitter_schedule(scale: float, max_tries: int) -> list[float]:
    """Jitters tried in turn: 0, then 1e-12, 1e-11, ... times the mean diagonal ``scale``.

    >>> jitter_schedule(2.0, 3)
    [0.0, 2e-12, 2e-11]
    """
    scale = check_positive("scale", scale)
    max_tries = check_int("max_tries", max_tries, minimum=1)
    return [0.0] + [scale * 10.0 ** (k - 12) for k in range(max_tries - 1)]


@dataclass(frozen=True)
class Cholesky:
    """K + (shift + jitter) I = L L^T, with L in the lower triangle of ``buffer``.

    Attributes:
        buffer: (N, N) Fortran-ordered; lower triangle L, strict upper triangle K.
        diagonal: (N,) the diagonal of K (before shift and jitter).
        shift: the noise / ridge term asked for.
        jitter: the extra diagonal term that made the factorisation succeed.
    """

    buffer: np.ndarray
    diagonal: np.ndarray
    shift: float
    jitter: float

    def solve(self, b: np.ndarray) -> np.ndarray:
        """(K + (shift + jitter) I)^-1 b (``potrs``; b is (N,) or (N, k))."""
        return scipy.linalg.cho_solve((self.buffer, True), b, check_finite=False)

    def solve_lower(self, b: np.ndarray) -> np.ndarray:
        """L^-1 b (forward substitution)."""
        return scipy.linalg.solve_triangular(
            self.buffer, b, lower=True, check_finite=False, overwrite_b=False
        )

    def logdet(self) -> float:
        """log det(K + (shift + jitter) I) = 2 sum log L_ii."""
        return float(2.0 * np.log(np.diagonal(self.buffer)).sum())


def _restore_lower(a: np.ndarray, diagonal: np.ndarray) -> None:
    """Copy the strict upper triangle onto the lower one, panel by panel; reset the diagonal."""
    n = a.shape[0]
    for j in range(0, n, _PANEL):
        k = min(j + _PANEL, n)
        block = a[j:k, j:k]
        upper = np.triu(block, 1)
        block[...] = upper + upper.T
        if k < n:
            a[k:, j:k] = a[j:k, k:].T
    a[np.diag_indices(n)] = diagonal


def cholesky_in_place(
    a: np.ndarray, *, shift: float = 0.0, max_tries: int = 8, scale: float | None = None
) -> Cholesky:
    """Factorise K + (shift + jitter) I in place, with the smallest jitter that works.

    Jitters are tried from :func:`jitter_schedule` (0 first). If even the largest
    fails, the error names the smallest eigenvalue of K + shift I (one extra
    eigenvalue computation, only then).

    Args:
        a: (N, N) float64 Fortran-ordered K, both triangles filled (e.g. from
            :func:`dltheory.kernels.gram_matrix`); overwritten.
        shift: noise variance / ridge added to the diagonal (>= 0).
        max_tries: attempts, the jitter growing tenfold from 1e-12 of the mean diagonal.
        scale: the jitter's scale (default: the mean of |diag K|, or 1 if it is 0).

    Returns:
        :class:`Cholesky` with the jitter that was needed.

    >>> import numpy as np
    >>> k = np.asfortranarray([[4.0, 2.0], [2.0, 2.0]])
    >>> c = cholesky_in_place(k)
    >>> np.round(np.tril(c.buffer), 12).tolist(), c.jitter
    ([[2.0, 0.0], [1.0, 1.0]], 0.0)
    """
    if (
        not isinstance(a, np.ndarray)
        or a.ndim != 2
        or a.shape[0] != a.shape[1]
        or a.dtype != np.float64
        or not a.flags.f_contiguous
    ):
        raise ValueError(
            message(
                "a",
                "a square Fortran-ordered float64 array",
                getattr(a, "shape", type(a).__name__),
                "Use np.asfortranarray(k, dtype=np.float64)",
            )
        )
    shift = check_nonnegative("shift", shift)
    max_tries = check_int("max_tries", max_tries, minimum=1)
    diagonal = np.diagonal(a).copy()
    if not np.isfinite(diagonal).all():
        raise ValueError(message("kernel", "finite", "non-finite diagonal entries"))
    if scale is None:
        scale = float(np.abs(diagonal).mean()) or 1.0
    else:
        scale = check_positive("scale", scale)
    for attempt, jitter in enumerate(jitter_schedule(scale, max_tries)):
        if attempt:
            _restore_lower(a, diagonal)
        a[np.diag_indices(len(a))] = diagonal + (shift + jitter)
        if _factor_lower(a, _PANEL):
            return Cholesky(a, diagonal, shift, jitter)
    _restore_lower(a, diagonal)
    a[np.diag_indices(len(a))] = diagonal + shift
    if not all(np.isfinite(a[:, j : j + _PANEL]).all() for j in range(0, len(a), _PANEL)):
        raise ValueError(message("kernel", "finite", "non-finite entries"))
    smallest = _smallest_eigenvalue(a)
    raise ValueError(
        message(
            "kernel",
            f"positive definite (K + noise I, even with a jitter of {jitter:.1e})",
            f"smallest eigenvalue {smallest:.3e}",
            "Increase the noise / ridge term (alpha), remove duplicate inputs, or check "
            "that the kernel is a valid covariance",
        )
    )


def _factor_lower(a: np.ndarray, panel: int) -> bool:
    """Blocked left-looking Cholesky of the lower triangle of ``a``, in place.

    For the columns c = [j, e) of each panel, with L_b = L[c, :j] the factorised
    rows of the diagonal block: L_cc L_cc^T = A_cc - L_b L_b^T (a small copy, as
    A_cc is still K there), then L[e:, c] = (A[e:, c] - L[e:, :j] L_b^T) L_cc^-T
    written into the buffer. Only the lower triangle and the diagonal are written.
    Returns False (the buffer partly overwritten) if a diagonal block is not
    positive definite.
    """
    t = torch.from_numpy(a)  # Fortran order: strides (1, n), a view of the same memory
    n = len(a)
    for j in range(0, n, panel):
        e = min(j + panel, n)
        left = t[j:e, :j]
        block = torch.addmm(t[j:e, j:e], left, left.T, alpha=-1.0) if j else t[j:e, j:e].clone()
        factor, info = torch.linalg.cholesky_ex(block)
        if info.item() != 0 or not bool(torch.isfinite(factor.diagonal()).all()):
            return False
        rows, cols = torch.tril_indices(e - j, e - j)
        t[j:e, j:e][rows, cols] = factor[rows, cols]
        if e < n:
            below = t[e:, j:e]
            if j:
                below.addmm_(t[e:, :j], left.T, alpha=-1.0)
            below.copy_(torch.linalg.solve_triangular(factor.T, below, upper=True, left=False))
    return True


def _smallest_eigenvalue(a: np.ndarray) -> float:
    return float(
        scipy.linalg.eigh(
            a, eigvals_only=True, subset_by_index=(0, 0), overwrite_a=True, check_finite=False
        )[0]
    )


def as_fortran_copy(k: Any) -> np.ndarray:
    """A Fortran-ordered float64 copy of a dense kernel matrix (torch or NumPy)."""
    k = as_float_tensor("k", k, ndim=2, dtype=torch.float64).detach().cpu().numpy()
    if k.shape[0] != k.shape[1]:
        raise ValueError(message("k", "a square matrix", f"shape {k.shape}"))
    return np.array(k, dtype=np.float64, order="F", copy=True)
