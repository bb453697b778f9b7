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

Mixed precision (:func:`mixed_cholesky`, :class:`MixedCholesky`): torch's
LAPACK Cholesky of a float32 copy of K + shift I, in place, runs at up to twice
the float64 flop rate, and the float64 system (K + shift I) x = b is then solved to float64
accuracy by conjugate gradients in float64 preconditioned by the float32 factor
(iterative refinement with a Krylov solver, as GMRES-IR in Carson & Higham 2018,
"Accelerating the solution of linear systems by iterative refinement in three
precisions", SIAM J. Sci. Comput. 40(2); for SPD systems, CG, Higham & Pranesh
2021, SIAM J. Sci. Comput. 43(1)). Refinement with a factor of precision u_f
converges when u_f kappa(A) is safely below 1 (Higham 2002, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., Sec. 12.1-12.2; Carson & Higham
2018, Thm. 2.1), at the rate ~ u_f kappa(A) per step. Memory: K (float64) and
the float32 factor, 1.5x the float64 Gram.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from .._checks import as_float_tensor, check_int, check_nonnegative, check_positive, message

__all__ = ["Cholesky", "MixedCholesky", "cholesky_in_place", "jitter_schedule", "mixed_cholesky"]

_PANEL = 512  # columns per factorised panel, and copied at a time when restoring
U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32, 2^-24
U64 = float(np.finfo(np.float64).eps) / 2  # unit roundoff of float64, 2^-53
# Mixed precision is tried only while u32 * kappa_est <= this (kappa_est a lower bound
# of kappa(K + shift I) from the float32 factor's diagonal, see mixed_cholesky):
# refinement contracts the error by ~ u32 kappa per step (Higham 2002, Sec. 12.1).
MIXED_MAX_U_KAPPA = 0.1
REFINE_TOL = 2.0**-46  # normwise backward error at which refinement stops (~1.4e-14)


def jitter_schedule(scale: float, max_tries: int) -> list[float]:
    """Jitters tried in turn: 0, then 1e-12, 1e-11, ... times the mean diagonal ``scale``.

    >>> jitter_schedule(2.0, 3)
    [0.0, 2e-12, 2e-11]
    """
    scale = check_positive("scale", scale)
    max_tries = check_int("max_tries", max_tries, minimum=1)
    if max_tries > 100:  # the last jitter would be 1e87 times the diagonal
        raise ValueError(message("max_tries", "an integer in [1, 100]", max_tries))
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
        b = _right_hand_side(b, self.buffer.shape[0])
        return scipy.linalg.cho_solve((self.buffer, True), b, check_finite=False)

    def solve_lower(self, b: np.ndarray) -> np.ndarray:
        """L^-1 b (forward substitution)."""
        b = _right_hand_side(b, self.buffer.shape[0])
        return scipy.linalg.solve_triangular(
            self.buffer, b, lower=True, check_finite=False, overwrite_b=False
        )

    def logdet(self) -> float:
        """log det(K + (shift + jitter) I) = 2 sum log L_ii."""
        return float(2.0 * np.log(np.diagonal(self.buffer)).sum())


def _right_hand_side(b: Any, n: int) -> np.ndarray:
    """b as a finite float64 (n,) or (n, k) array (no copy when it already is one)."""
    if not (isinstance(b, np.ndarray) and b.dtype == np.float64):
        b = as_float_tensor("b", b, dtype=torch.float64, detach=True).numpy()
    if b.ndim not in (1, 2) or b.shape[0] != n:
        raise ValueError(message("b", f"of shape ({n},) or ({n}, k)", f"shape {b.shape}"))
    if not np.isfinite(b).all():
        raise ValueError(message("b", "finite (no NaN or inf)", "non-finite entries"))
    return b


def _check_fortran_square(name: str, a: Any) -> None:
    """The in-place factorisations need a square Fortran-ordered float64 array."""
    if (
        not isinstance(a, np.ndarray)
        or a.ndim != 2
        or a.shape[0] != a.shape[1]
        or a.dtype != np.float64
        or not a.flags.f_contiguous
    ):
        raise ValueError(
            message(
                name,
                "a square Fortran-ordered float64 array",
                getattr(a, "shape", type(a).__name__),
                "Use np.asfortranarray(k, dtype=np.float64)",
            )
        )


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
    _check_fortran_square("a", a)
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


class MixedPrecisionError(ValueError):
    """The float32 factor cannot precondition K + shift I (not positive definite in
    float32, or conditioning beyond what refinement from float32 can recover)."""


@dataclass(frozen=True)
class Refinement:
    """The result of :meth:`MixedCholesky.refine`.

    Attributes:
        x: (N, k) the solution.
        iterations: CG iterations (matrix products with the float64 K).
        residuals: normwise backward error after each iteration (worst column),
            ||b - A x|| / (||A|| ||x|| + ||b||) (Rigal & Gaches; Higham 2002, Thm. 7.1).
        converged: whether it reached ``tol`` (the last residual, from b - A x afresh).
    """

    x: np.ndarray
    iterations: int
    residuals: tuple[float, ...]
    converged: bool


@dataclass(frozen=True)
class MixedCholesky:
    """A = K + shift I solved in float64, preconditioned by a float32 Cholesky factor.

    Built by :func:`mixed_cholesky`. ``solve`` returns the float64 solution to a
    normwise backward error ``tol`` (2^-46 by default, the forward error is then at
    most ~2 kappa(A) tol, Higham 2002, Thm. 7.2), as a float64 Cholesky solve would;
    ``solve_lower`` returns V with V^T V = B^T A^-1 B to float64 accuracy. Only
    ``logdet`` is float32-accurate: it is log det(L32 L32^T) = log det A - log det(I + F),
    F = L32^-1 A L32^-T - I, and |log det(I + F)| can reach N ||F||, ||F|| ~ u32 kappa(A).

    Attributes:
        matrix: (N, N) float64 K, both triangles (read, never written).
        lower: (N, N) float32 Fortran-ordered; its lower triangle L32 with
            L32 L32^T ~ (K + shift I) / scale.
        diagonal: (N,) the diagonal of K (before the shift).
        shift: the noise / ridge term on the diagonal.
        scale: the power of two K was divided by before the float32 cast (range).
        norm: an estimate (a lower bound) of ||A||_2, for the backward error.
        condition: a lower bound of kappa_2(A): norm / min_i (L32_ii^2 scale).
        tol, max_iter: refinement stops at backward error ``tol`` or after ``max_iter``.
        jitter: always 0.0: A itself is solved (interface of :class:`Cholesky`).
    """

    matrix: np.ndarray
    lower: np.ndarray
    diagonal: np.ndarray
    shift: float
    scale: float
    norm: float
    condition: float
    tol: float = REFINE_TOL
    max_iter: int = 50
    jitter: float = 0.0

    def apply(self, v: np.ndarray) -> np.ndarray:
        """A v in float64 (torch's BLAS on the float64 K)."""
        kv = torch.from_numpy(self.matrix) @ torch.from_numpy(np.ascontiguousarray(v))
        return kv.numpy() + self.shift * v

    def precondition(self, r: np.ndarray) -> np.ndarray:
        """(L32 L32^T)^-1 r scaled back, by two float32 triangular solves (r (N, k))."""
        s = np.abs(r).max(0)
        s[~(s > 0)] = 1.0
        r32 = (r / s).astype(np.float32)
        solve = scipy.linalg.solve_triangular  # LAPACK strtrs on the Fortran buffer, no copy
        z = solve(self.lower, r32, lower=True, check_finite=False, overwrite_b=True)
        z = solve(self.lower, z, lower=True, trans="T", check_finite=False, overwrite_b=True)
        return z.astype(np.float64) * (s / self.scale)

    def _backward_error(self, r: np.ndarray, x: np.ndarray, norm_b: np.ndarray) -> np.ndarray:
        denom = self.norm * np.linalg.norm(x, axis=0) + norm_b
        return np.linalg.norm(r, axis=0) / np.where(denom > 0, denom, 1.0)

    def refine(self, b: np.ndarray) -> Refinement:
        """Solve A x = b by CG in float64 preconditioned with the float32 factor.

        Flexible (Polak-Ribiere) CG, as the float32 preconditioner is applied with
        rounding (Golub & Ye 1999, "Inexact preconditioned conjugate gradient method
        with inner-outer iteration"); the residual is recomputed from b - A x before
        stopping. Stops at backward error ``tol``, after ``max_iter`` iterations, or
        when the error stops falling (halved at most once in three iterations).
        """
        b = _right_hand_side(b, self.matrix.shape[0])
        rhs = b.reshape(len(b), -1)
        norm_b = np.linalg.norm(rhs, axis=0)
        x = np.zeros_like(rhs)
        r = rhs.copy()
        eta = self._backward_error(r, x, norm_b)
        residuals: list[float] = []
        z = self.precondition(r)
        p = z.copy()
        rz = (r * z).sum(0)
        iterations = 0
        while float(eta.max()) > self.tol and iterations < self.max_iter:
            q = self.apply(p)
            pq = (p * q).sum(0)
            step = np.where(pq > 0, rz / np.where(pq > 0, pq, 1.0), 0.0)
            x += step * p
            r -= step * q
            iterations += 1
            eta = self._backward_error(r, x, norm_b)
            if float(eta.max()) <= self.tol:  # confirm with the true residual
                r = rhs - self.apply(x)
                eta = self._backward_error(r, x, norm_b)
            residuals.append(float(eta.max()))
            if len(residuals) > 3 and residuals[-1] > 0.5 * residuals[-4]:
                break  # stagnation: float32 cannot precondition this system well enough
            z_new = self.precondition(r)
            beta = np.where(rz > 0, (r * (z_new - z)).sum(0) / np.where(rz > 0, rz, 1.0), 0.0)
            rz = (r * z_new).sum(0)
            z = z_new
            p = z + beta * p
        x = x.reshape(b.shape)
        return Refinement(x, iterations, tuple(residuals), float(eta.max()) <= self.tol)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """A^-1 b to float64 accuracy (b (N,) or (N, k)); see :meth:`refine`."""
        out = self.refine(b)
        if not out.converged:
            raise MixedPrecisionError(
                message(
                    "refinement",
                    f"converged to backward error {self.tol:.1e}",
                    f"{out.residuals[-1] if out.residuals else float('nan'):.1e} after "
                    f"{out.iterations} iterations",
                    "Solve with a float64 factor (precision='float64')",
                )
            )
        return out.x

    def _triangular64(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        """L32^-1 b (or L32^-T b) in float64 with L32's entries exactly, by 512-column panels."""
        low = torch.from_numpy(self.lower)
        x = torch.from_numpy(np.array(b, dtype=np.float64, order="C", copy=True))
        n = len(low)
        starts = list(range(0, n, _PANEL))
        for j in reversed(starts) if transpose else starts:
            e = min(j + _PANEL, n)
            panel = low[j:, j:e].to(torch.float64)  # (n - j, e - j), diagonal block on top
            diag = panel[: e - j].tril()
            if transpose:
                if e < n:
                    x[j:e] -= panel[e - j :].T @ x[e:]
                x[j:e] = torch.linalg.solve_triangular(diag.T, x[j:e], upper=True)
            else:
                x[j:e] = torch.linalg.solve_triangular(diag, x[j:e], upper=False)
                if e < n:
                    x[e:] -= panel[e - j :] @ x[j:e]
        return x.numpy()

    def solve_lower(self, b: np.ndarray) -> np.ndarray:
        """V = G^-1/2 M^-1 b, M = L32 sqrt(scale), G = M^-1 A M^-T: V^T V = b^T A^-1 b.

        G^-1/2 = (I + F)^-1/2 by its binomial series, summed until a term is below
        2^-56 of the sum (converges as ||F||^k, ||F|| ~ u32 kappa(A)); every product
        with F is float64 (A in float64, M's float32 entries used exactly).
        """
        root = np.sqrt(self.scale)
        b = _right_hand_side(b, self.matrix.shape[0])
        w = self._triangular64(b.reshape(len(b), -1), False) / root
        v, term = w.copy(), w
        for k in range(1, 200):
            f_term = self._triangular64(self.apply(self._triangular64(term, True) / root), False)
            term = (f_term / root - term) * (-(2 * k - 1) / (2 * k))
            v += term
            size, total = np.linalg.norm(term), np.linalg.norm(v)
            if size <= 2.0**-56 * total:
                return v.reshape(b.shape)
            if not np.isfinite(size) or (k > 20 and size > total):
                break
        raise MixedPrecisionError(
            message(
                "solve_lower",
                "a convergent series (||F|| < 1)",
                "a diverging one",
                "Solve with a float64 factor (precision='float64')",
            )
        )

    def logdet(self) -> float:
        """log det(L32 L32^T scale): float32-accurate (see the class docstring)."""
        d = np.diagonal(self.lower).astype(np.float64)
        return float(2.0 * np.log(d).sum() + len(d) * np.log(self.scale))


def mixed_cholesky(
    k: np.ndarray, *, shift: float = 0.0, max_u_kappa: float = MIXED_MAX_U_KAPPA
) -> MixedCholesky:
    """Factorise (K + shift I) in float32 (a second, half-size buffer) for a float64 solve.

    K is read, not written: the float32 copy K / scale + (shift / scale) I (scale a
    power of two near the mean diagonal, so float32's range holds it) is factorised
    in place by LAPACK ``potrf`` through torch (``torch.linalg.cholesky_ex`` with the
    buffer as its output: no third N x N array; its strict upper triangle is
    zeroed). The float32
    factor is refused (:class:`MixedPrecisionError`) if it breaks down, or if the
    condition estimate kappa_est = ||A||_est / min_i L_ii^2 (a lower bound of
    kappa_2(A): L_ii^2 >= lambda_min and ||A||_est <= lambda_max) exceeds
    ``max_u_kappa`` / u32: refinement from a precision-u32 factor converges at the
    rate ~ u32 kappa (Higham 2002, Sec. 12.1), and not at all near u32 kappa ~ 1.

    Args:
        k: (N, N) float64 Fortran-ordered K, both triangles filled.
        shift: noise / ridge (>= 0).
        max_u_kappa: the largest u32 * kappa_est accepted.

    >>> import numpy as np
    >>> k = np.asfortranarray([[4.0, 2.0], [2.0, 2.0]])
    >>> m = mixed_cholesky(k)
    >>> np.round(m.solve(np.array([6.0, 4.0])), 12).tolist()
    [1.0, 1.0]
    """
    _check_fortran_square("k", k)
    shift = check_nonnegative("shift", shift)
    n = len(k)
    diagonal = np.diagonal(k).copy()
    mean = float(np.abs(diagonal).mean()) + shift if n else 1.0
    if not np.isfinite(diagonal).all() or not mean > 0 or not np.isfinite(mean):
        raise MixedPrecisionError(message("kernel", "a finite positive diagonal", "otherwise"))
    scale = 2.0 ** round(np.log2(mean))
    low = np.empty((n, n), dtype=np.float32, order="F")
    low_t, k_t = torch.from_numpy(low), torch.from_numpy(k)
    if 1e-30 < mean and diagonal.max() < 1e38:  # |K_ij| <= max K_ii: K fits float32 as is
        low_t.copy_(k_t)  # one threaded cast, then an exact power-of-two scaling
        low_t.mul_(1.0 / scale)
    else:  # scale first, panel by panel: no N x N float64 temporary
        for j in range(0, n, _PANEL):
            low_t[:, j : j + _PANEL].copy_(k_t[:, j : j + _PANEL] / scale)
    low[np.diag_indices(n)] = ((diagonal + shift) / scale).astype(np.float32)
    info = torch.empty((), dtype=torch.int32)  # LAPACK potrf in place (column-major view)
    torch.linalg.cholesky_ex(torch.from_numpy(low), out=(torch.from_numpy(low), info))
    if info.item() != 0 or not np.isfinite(np.diagonal(low)).all():
        raise MixedPrecisionError(
            message("kernel", "positive definite in float32", "a float32 Cholesky breakdown")
        )
    ones = np.full((n, 1), 1.0 / np.sqrt(max(n, 1)))
    norm = float(
        max(
            np.linalg.norm(torch.from_numpy(k) @ torch.from_numpy(ones)) + shift,
            diagonal.max() + shift,
        )
    )
    pivot = float(np.diagonal(low).astype(np.float64).min()) ** 2 * scale
    condition = norm / pivot if pivot > 0 else float("inf")
    if not U32 * condition <= max_u_kappa:
        raise MixedPrecisionError(
            message(
                "kernel",
                f"conditioned for float32 (u32 kappa <= {max_u_kappa})",
                f"kappa >= {condition:.2e}",
            )
        )
    return MixedCholesky(k, low, diagonal, shift, scale, norm, condition)
