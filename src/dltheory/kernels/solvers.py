"""Kernel ridge regression with a spec's kernel: exact in place, or matrix-free CG.

All three solve for the coefficients alpha of f(x) = sum_i alpha_i k(x, c_i):

* :func:`fit_exact`: (K + ridge I) alpha = y by Cholesky of the one N x N buffer
  the kernel was written into (:func:`gram_matrix`, :func:`cholesky_in_place`);
  peak memory is the Gram and a few panels.
* :func:`fit_pcg`: the same system by conjugate gradients preconditioned with a
  rank-r Nystrom approximation of K (Frangella, Tropp & Udell 2023, "Randomized
  Nystrom preconditioning"); K v is recomputed block by block every iteration
  (:func:`kernel_product`), so K is never stored. Same answer as the exact
  solver, to the tolerance.
* :func:`fit_falkon`: Nystrom kernel ridge regression on m inducing points,
  (K_nm^T K_nm + ridge K_mm) alpha = K_nm^T y, by Falkon's preconditioned CG
  (Rudi, Carratino & Rosasco 2017; Meanti et al. 2020). K_nm is computed once,
  in row blocks, and kept (here, or in the Dask workers' memory, each worker
  holding its rows: every CG iteration is then a distributed product); with
  ``keep_cross=False`` (memory O(N m) not available) the blocks are recomputed
  at every iteration instead.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import threadpoolctl
import torch

from .._checks import (
    as_float_tensor,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    message,
)
from ..parallel import Pool
from ..spec.layers import Serial
from .blocked import kernel
from .cholesky import (
    REFINE_TOL,
    Cholesky,
    MixedCholesky,
    MixedPrecisionError,
    as_fortran_copy,
    cholesky_in_place,
    mixed_cholesky,
)
from .gram import (
    PRODUCT_MEMORY,
    KernelKind,
    gram_matrix,
    kernel_block,
    kernel_product,
)
from .gram_cg import gram_cg

__all__ = ["KernelRidgeFit", "fit_exact", "fit_falkon", "fit_pcg"]

__fuzz_exempt__ = {
    "fit_exact:inf": "log_marginal_likelihood is -inf when the evidence lies below float64's "
    "range (targets near the float limit); the coefficients stay right",
}


@dataclass(frozen=True)
class KernelRidgeFit:
    """A fitted kernel ridge regression f(x) = K(x, centres) @ alpha.

    Attributes:
        alpha: (M, k) coefficients (M = N for exact / PCG, m for Falkon).
        centres: (M, n_0) the points the coefficients sit on.
        jitter: diagonal jitter the Cholesky factorisations needed.
        iterations: CG iterations (0 for the exact solver in float64; its refinement
            iterations in mixed precision).
        residuals: relative residual norms per iteration (worst output column); for
            the exact solver in mixed precision, normwise backward errors.
        converged: whether the CG residual reached ``tol`` (always True when exact).
        factor: the exact solver's Cholesky (kept for posterior variances): a
            :class:`Cholesky` (float64) or :class:`MixedCholesky`; else None.
        log_marginal_likelihood: the exact solver's GP evidence log p(y) (summed over
            the output columns; sample weights count as repeated samples), else None.
        precision: what the exact solver ran: ``"float64"`` (float64 Cholesky),
            ``"mixed"`` (float32 factor, float64 refinement) or ``"cg"`` (float64 CG on
            the stored Gram, no factor: ``fit_exact(factor=False)``); ``"float64"`` for
            the CG solvers.
    """

    alpha: np.ndarray
    centres: torch.Tensor
    jitter: float
    iterations: int
    residuals: tuple[float, ...]
    converged: bool
    factor: Cholesky | MixedCholesky | None = None
    log_marginal_likelihood: float | None = None
    precision: str = "float64"


def _weights(weights: Any, n: int) -> np.ndarray | None:
    """Sample weights: None, or (N,) finite and > 0."""
    if weights is None:
        return None
    w = as_float_tensor("weights", weights, ndim=1, dtype=torch.float64).detach().numpy()
    if len(w) != n or not (w > 0).all():
        raise ValueError(message("weights", f"of shape ({n},) with entries > 0", w.shape))
    return w


def _inputs(x: Any, y: Any) -> tuple[torch.Tensor, np.ndarray]:
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64).detach()
    y = as_float_tensor("y", y, dtype=torch.float64).detach()
    if y.ndim not in (1, 2) or len(y) != len(x):
        raise ValueError(
            message("y", f"of shape ({len(x)},) or ({len(x)}, k) like x", tuple(y.shape))
        )
    return x, y.reshape(len(x), -1).numpy()


MIXED_MIN_SIZE = 4096  # precision="auto" tries float32 + refinement from this N on


def _scale_targets(y: np.ndarray) -> tuple[np.ndarray, float]:
    """y / s with s a power of two near max |y|: the solve is linear in y, and scaling
    by a power of two is exact, so y up to float64's limit neither overflows the
    solve nor changes the result's bits."""
    top = float(np.abs(y).max()) if y.size else 0.0
    if not np.isfinite(top):
        raise ValueError(message("y", "finite", "non-finite entries"))
    if top == 0.0:
        return y, 1.0
    s = 2.0 ** int(np.floor(np.log2(top)))
    return y / s, s


def _unscale(alpha: np.ndarray, s: float) -> np.ndarray:
    """alpha s, refused if the coefficients themselves overflow float64."""
    with np.errstate(over="ignore"):
        out = alpha * s
    if not np.isfinite(out).all():
        raise ValueError(
            message(
                "y",
                "small enough that the coefficients (K + ridge I)^-1 y fit in float64",
                f"max |y| = {s:.1e} (coefficients overflow)",
                "Rescale y, or raise the ridge",
            )
        )
    return out


def _scaled_evidence(y: np.ndarray, coef: np.ndarray, logdet: float, s: float) -> float:
    """log p(y) from y / s and its coefficients: the quadratic term scaled by s^2
    (overflowing to -inf when log p is below float64's range)."""
    n, k = y.shape
    with np.errstate(over="ignore"):
        quad = float((y * coef).sum()) * s * s if s != 1.0 else float((y * coef).sum())
    return float(-0.5 * quad - 0.5 * k * logdet - 0.5 * k * n * np.log(2 * np.pi))


def fit_exact(
    spec: Serial,
    x: Any,
    y: Any,
    *,
    kind: KernelKind = "nngp",
    ridge: float = 0.0,
    block_rows: int | None = None,
    weights: Any = None,
    precision: str = "auto",
    factor: bool = True,
) -> KernelRidgeFit:
    """alpha = (K + ridge W^-1)^-1 y, the kernel written and factorised in one buffer.

    With sample weights W = diag(w) this minimises sum_i w_i (y_i - f_i)^2 + ridge |f|_K^2
    (weight w is w repeated samples); without, W = I.

    ``precision``: ``"float64"`` factorises the Gram in place in float64
    (:func:`cholesky_in_place`). ``"mixed"`` factorises a float32 copy (half the
    Gram's memory more, twice the flop rate) and solves the float64 system by CG
    preconditioned with it, to the backward error of a float64 solve
    (:func:`mixed_cholesky`; Carson & Higham 2018); it raises if the float32 factor
    breaks down. ``"auto"`` (default) uses float64 below N = ``MIXED_MIN_SIZE``,
    and above it tries mixed precision, falling back to float64 (same buffer) when
    the float32 factor breaks down, when the condition estimate from its diagonal
    says u32 kappa > 0.1, or when refinement stagnates. ``precision`` of the result
    says which ran. In mixed precision the evidence's log-determinant is the float32
    factor's (float32-accurate, see :class:`MixedCholesky`); the coefficients are not.

    ``factor=False`` asks for the coefficients only (no factor for posterior variances,
    no evidence): ``"auto"`` then first runs CG on the stored Gram, preconditioned by
    a Nystrom approximation (:func:`~dltheory.kernels.gram_cg.gram_cg`), O(N^2) per
    iteration, to the backward error of the float64 solve; it gives up for the
    factorisation (finishing from the CG iterate) once its observed convergence
    predicts more time than a float32 Cholesky at the machine's measured GEMM rate.
    ``precision="cg"`` runs the CG alone (``converged`` says whether it reached that
    error within 1000 iterations).

    y is scaled internally by a power of two (exact), so y near float64's range gives
    the right coefficients, or a ValueError if they overflow.

    Args:
        spec: the network; x: (N, n_0) inputs; y: (N,) or (N, k) targets.
        kind: ``"nngp"`` or ``"ntk"``; ridge: noise variance / ridge (>= 0).
        block_rows: rows per kernel panel (see :func:`gram_matrix`).
        weights: None or (N,) sample weights > 0.
        precision: ``"auto"``, ``"float64"``, ``"mixed"`` or ``"cg"`` (``factor=False``).
        factor: keep the Cholesky factor and the evidence (True), or the coefficients
            only (False: ``factor`` and ``log_marginal_likelihood`` of the result are None
            when the CG ran).

    >>> import torch
    >>> from dltheory import MLP
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> fit = fit_exact(MLP(depth=1, activation="relu", c_w=2.0), x, [1.0, 1.0])
    >>> [round(float(a), 12) for a in fit.alpha[:, 0]]  # K = [[1, 1/pi], [1/pi, 1]]: pi/(pi+1)
    [0.758546992995, 0.758546992995]
    >>> fit.precision
    'float64'
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    check_choice("precision", precision, ("auto", "float64", "mixed", "cg"))
    if not isinstance(factor, bool):
        raise TypeError(message("factor", "True or False", repr(factor)))
    if precision == "cg" and factor:
        raise ValueError(
            message(
                "precision",
                "'cg' only with factor=False",
                "'cg' with factor=True",
                "CG does not factorise the kernel: pass factor=False",
            )
        )
    x, y = _inputs(x, y)
    y, y_scale = _scale_targets(y)
    ridge = check_nonnegative("ridge", ridge)
    w = _weights(weights, len(x))
    if precision == "cg" and ridge <= 0:
        raise ValueError(message("ridge", "> 0 for precision='cg'", ridge))
    buffer = gram_matrix(spec, x, kind=kind, block_rows=block_rows)
    n = len(x)
    d = np.full(n, ridge) if w is None else ridge / w  # the diagonal added to K
    start = np.zeros_like(y)
    if precision == "cg" or (
        precision == "auto" and not factor and ridge > 0 and n >= MIXED_MIN_SIZE
    ):
        budget = math.inf if precision == "cg" else _float32_cholesky_seconds(n)
        cg = gram_cg(buffer, y, d, rank=min(GRAM_CG_RANK, n), tol=REFINE_TOL, budget_s=budget)
        if cg.converged or precision == "cg":
            coef = _unscale(cg.x, y_scale)
            return KernelRidgeFit(
                coef, x, 0.0, cg.iterations, cg.residuals, cg.converged, None, None, "cg"
            )
        start = cg.x  # the factorisation finishes from the CG iterate
    rhs = y if not start.any() else _remaining(buffer, d, y, start)
    if w is not None:  # ridge / w_i on the diagonal: ridge below, the rest here
        buffer[np.diag_indices(n)] += ridge * (1.0 / w - 1.0)
    chol: Cholesky | MixedCholesky | None = None
    iterations, residuals = 0, ()
    if precision == "mixed" or (precision == "auto" and n >= MIXED_MIN_SIZE):
        try:
            chol = mixed_cholesky(buffer, shift=ridge)
        except MixedPrecisionError:
            if precision == "mixed":
                raise
        if chol is not None:
            out = chol.refine(rhs)
            coef, iterations, residuals = out.x, out.iterations, out.residuals
            if not out.converged and precision == "auto":
                chol = None  # the float32 copy is freed before the float64 factor
    if chol is None:
        chol = cholesky_in_place(buffer, shift=ridge)
        coef, iterations, residuals, converged = chol.solve(rhs), 0, (), True
        used = "float64"
    else:
        converged, used = out.converged, "mixed"
    coef = coef + start
    lml = _scaled_evidence(y, coef, chol.logdet(), y_scale)
    coef = _unscale(coef, y_scale)
    if w is not None and ridge > 0:  # w copies of a sample: their (w - 1) extra noise factors
        lml -= 0.5 * y.shape[1] * float(((w - 1.0) * np.log(2 * np.pi * ridge) + np.log(w)).sum())
    if not factor:
        chol, lml = None, None
    return KernelRidgeFit(coef, x, chol.jitter if chol is not None else 0.0, iterations,
                          residuals, converged, chol, lml, used)  # fmt: skip


GRAM_CG_RANK = 500  # Nystrom columns of fit_exact(factor=False)'s CG preconditioner
_GEMM_RATE: list[float] = []  # float32 flop/s of this machine's BLAS, measured once


def _float32_cholesky_seconds(n: int) -> float:
    """N^3 / 3 flops at the float32 GEMM rate measured here (a lower bound of the
    float32 Cholesky's time: LAPACK potrf runs at most at the GEMM rate)."""
    if not _GEMM_RATE:
        a = torch.ones(1024, 1024, dtype=torch.float32)
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        _GEMM_RATE.append(2 * 1024**3 / max(best, 1e-9))
    return n**3 / 3 / _GEMM_RATE[0]


def _remaining(k: np.ndarray, d: np.ndarray, y: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """y - (K + diag(d)) x0 in float64."""
    kx = (torch.from_numpy(k) @ torch.from_numpy(np.ascontiguousarray(x0))).numpy()
    return y - kx - d[:, None] * x0


def _cg(apply, rhs: np.ndarray, precondition, tol: float, max_iter: int):
    """Preconditioned CG on every column of ``rhs`` at once (independent step sizes)."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = precondition(r)
    p = z.copy()
    rz = (r * z).sum(0)
    norm_b = np.linalg.norm(rhs, axis=0)
    norm_b[norm_b == 0] = 1.0
    residuals: list[float] = []
    for _ in range(max_iter):
        rel = float((np.linalg.norm(r, axis=0) / norm_b).max())
        if rel <= tol:
            return x, residuals, True
        ap = apply(p)
        step = rz / np.where((p * ap).sum(0) == 0, 1.0, (p * ap).sum(0))
        x += step * p
        r -= step * ap
        residuals.append(float((np.linalg.norm(r, axis=0) / norm_b).max()))
        z = precondition(r)
        rz_new = (r * z).sum(0)
        p = z + (rz_new / np.where(rz == 0, 1.0, rz)) * p
        rz = rz_new
    return x, residuals, residuals[-1] <= tol if residuals else True


def _centres(n: int, m: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def fit_pcg(
    spec: Serial,
    x: Any,
    y: Any,
    *,
    kind: KernelKind = "nngp",
    ridge: float,
    rank: int = 200,
    tol: float = 1e-8,
    max_iter: int = 500,
    seed: int = 0,
    pool: Pool | None = None,
    block_rows: int | None = None,
    weights: Any = None,
) -> KernelRidgeFit:
    """(K + ridge W^-1) alpha = y by Nystrom-preconditioned CG, K never stored.

    Preconditioner (Frangella et al. 2023, Eq. 5.3): K ~ U diag(lam) U^T from the
    Nystrom approximation on ``rank`` uniformly sampled columns, and
    P^-1 = U diag((lam_r + ridge) / (lam + ridge)) U^T + (I - U U^T).

    Args:
        spec, x, y, kind: as in :func:`fit_exact`.
        ridge: noise variance / ridge (> 0: CG needs a well-posed system).
        rank: Nystrom columns of the preconditioner (<= N).
        tol: stop when ||y - (K + ridge I) alpha|| <= tol ||y|| (every column).
        max_iter: at most this many iterations.
        seed: picks the Nystrom columns.
        pool: where the block products run (``dltheory.parallel.pool``); None: here.
        block_rows: rows per block of K v.
        weights: None or (N,) sample weights > 0 (ridge / w_i on the diagonal).
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    x, y = _inputs(x, y)
    ridge = check_positive("ridge", ridge)
    w = _weights(weights, len(x))
    diag_ridge = ridge if w is None else (ridge / w)[:, None]
    rank = min(check_int("rank", rank, minimum=1), len(x))
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    idx = _centres(len(x), rank, check_int("seed", seed, minimum=0))
    k_nm = getattr(kernel(spec, x, x[idx]), kind).numpy()
    chol = cholesky_in_place(np.asfortranarray(k_nm[idx]))
    f = chol.solve_lower(k_nm.T).T  # K_nm L^-T: K ~ F F^T
    u, s, _ = scipy.linalg.svd(f, full_matrices=False, check_finite=False)
    lam = s * s
    floor = lam[-1] + ridge
    weights = floor / (lam + ridge) - 1.0

    def precondition(r: np.ndarray) -> np.ndarray:
        return r + u @ (weights[:, None] * (u.T @ r))

    def apply(p: np.ndarray) -> np.ndarray:
        kp = kernel_product(
            spec, x, x, torch.from_numpy(p), kind=kind, pool=pool, block_rows=block_rows
        )
        return kp.numpy() + diag_ridge * p

    alpha, residuals, converged = _cg(apply, y, precondition, tol, max_iter)
    return KernelRidgeFit(alpha, x, chol.jitter, len(residuals), tuple(residuals), converged)


def fit_falkon(
    spec: Serial,
    x: Any,
    y: Any,
    *,
    kind: KernelKind = "nngp",
    ridge: float,
    n_inducing: int,
    tol: float = 1e-8,
    max_iter: int = 100,
    seed: int = 0,
    pool: Pool | None = None,
    block_rows: int | None = None,
    keep_cross: bool = True,
    weights: Any = None,
    cross_dtype: str = "float64",
) -> KernelRidgeFit:
    """Nystrom kernel ridge regression on ``n_inducing`` centres by Falkon's PCG.

    Solves (K_nm^T K_nm + ridge K_mm) alpha = K_nm^T y, the minimiser of
    ||K_nm alpha - y||^2 + ridge alpha^T K_mm alpha over functions spanned by the
    centres (Rudi et al. 2017, Alg. 1, with their lambda n = ``ridge``). The
    preconditioner B = T^-1 A^-1 / sqrt(n), T^T T = K_mm, A^T A = T T^T / m +
    lambda I makes B^T H B close to the identity. With all N points as centres
    this is exact kernel ridge regression.

    Args:
        spec, x, y, kind: as in :func:`fit_exact`; ridge: as in :func:`fit_pcg`.
        n_inducing: m, the number of centres (uniformly sampled, without replacement).
        tol: relative residual of the preconditioned system at which CG stops.
        max_iter, seed, pool, block_rows: as in :func:`fit_pcg`.
        keep_cross: compute K_nm once and keep it (8 N m bytes, spread over the
            Dask workers with a pool); False: recompute its blocks every iteration.
        weights: None or (N,) sample weights > 0: K_nm^T W K_nm + ridge K_mm and
            K_nm^T W y (``keep_cross`` only).
        cross_dtype: ``"float64"`` or ``"float32"``: how the kept K_nm is stored
            (serially; float32 halves its 8 N m bytes and the memory traffic of every
            iteration; the kernel is computed and every product accumulated in float64,
            so only the entries' rounding, relative 6e-8, changes the system).

    Serially, K_nm is one (N, m) array and every CG step's K_nm^T W K_nm u is one
    pass over it (compiled, threads over row ranges: each row is read once from
    memory and used twice from cache), so an iteration runs at memory bandwidth.
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    x, y = _inputs(x, y)
    y, y_scale = _scale_targets(y)  # linear in y: no overflow
    ridge = check_positive("ridge", ridge)
    n = len(x)
    m = min(check_int("n_inducing", n_inducing, minimum=1), n)
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if not isinstance(keep_cross, bool):
        raise TypeError(message("keep_cross", "True or False", keep_cross))
    w = _weights(weights, n)
    check_choice("cross_dtype", cross_dtype, ("float64", "float32"))
    if w is not None and not keep_cross:
        raise ValueError(message("weights", "None with keep_cross=False", "weights"))
    centres = x[_centres(n, m, check_int("seed", seed, minimum=0))]
    k_mm = as_fortran_copy(getattr(kernel(spec, centres), kind))
    k_mm_copy = np.array(k_mm)
    t = cholesky_in_place(k_mm, scale=float(np.abs(np.diagonal(k_mm)).mean()) or 1.0)
    t_up = np.triu(t.buffer.T)  # T upper with T^T T = K_mm + jitter I
    lam = ridge / n
    # T T^T / m by one triangular product (half the flops of a general one)
    tt = scipy.linalg.blas.dtrmm(1.0 / m, t_up, np.asfortranarray(t_up), side=1, trans_a=1)
    a_mat = cholesky_in_place(np.asfortranarray(tt), shift=lam)
    a_up = np.triu(a_mat.buffer.T)
    solve = scipy.linalg.solve_triangular

    def b_apply(v):  # B v = T^-1 A^-1 v / sqrt(n)
        return solve(t_up, solve(a_up, v, check_finite=False), check_finite=False) / np.sqrt(n)

    def bt_apply(v):  # B^T v = A^-T T^-T v / sqrt(n)
        inner = solve(t_up, v, trans="T", check_finite=False)
        return solve(a_up, inner, trans="T", check_finite=False) / np.sqrt(n)

    if keep_cross:
        # One block partition for both backends (the entries of K(x_b, centres) can
        # depend on the block's size in the last bit) and one fixed reduction order:
        # per-chunk partial sums, chunks summed in order within a block, blocks in
        # block order. Nothing depends on the thread count or on where a block lives,
        # so serial and Dask fits give bitwise the same numbers.
        rows = block_rows or max(1, min(n, PRODUCT_MEMORY // (8 * 3 * m)))
        if block_rows is None:
            rows = min(rows, max(64, -(-n // 4)))
        rows = check_int("block_rows", rows, minimum=1)
        w_all = np.ones(n) if w is None else w
        chunk = _chunk_rows(n, m, y.shape[1], rows)
        if pool is None:
            k_nm = _cross_matrix(spec, x, centres, kind, rows, np.dtype(cross_dtype))
            bounds, groups = _reduction_partition(n, rows, chunk)
            rhs = _stored_normal(k_nm, None, w_all, y, bounds=bounds, groups=groups)

            def normal(u):
                return _stored_normal(k_nm, u, w_all, bounds=bounds, groups=groups)
        else:
            # Contiguous runs of blocks per worker (8 N m / workers bytes each), every
            # later task of a block pinned to the worker holding it: nothing is copied.
            starts = list(range(0, n, rows))
            addresses = pool.workers()
            where = [addresses[b * len(addresses) // len(starts)] for b in range(len(starts))]
            c_ref = pool.scatter(centres)
            blocks = pool.persist(kernel_block, [{"spec": spec, "x1": x[i : i + rows].clone(),
                                                  "x2": c_ref, "kind": kind} for i in starts],
                                  workers=where)  # fmt: skip
            w_refs = pool.persist(_block_slice, [{"v": w_all, "lo": i, "hi": i + rows}
                                                 for i in starts], workers=where)  # fmt: skip
            wy = np.ascontiguousarray((y * w_all[:, None]).T)
            tasks = [{"block": b, "ut": wy[:, i : i + rows], "w": wb, "chunk": chunk}
                     for b, wb, i in zip(blocks, w_refs, starts, strict=True)]  # fmt: skip
            rhs = _sum_in_order(pool.map(_kept_block_product, tasks, workers=where)).T.copy()

            def normal(u):
                u_ref = pool.scatter(np.ascontiguousarray(u.T, dtype=np.float64))
                tasks = [{"block": b, "ut": u_ref, "w": wb, "chunk": chunk, "normal": True}
                         for b, wb in zip(blocks, w_refs, strict=True)]  # fmt: skip
                return _sum_in_order(pool.map(_kept_block_product, tasks, workers=where)).T.copy()
    else:
        rhs = _cross_transpose_product(spec, x, centres, y, kind, pool)

        def normal(u):
            return kernel_product(
                spec, x, centres, torch.from_numpy(u), kind=kind, pool=pool,
                block_rows=block_rows, gram_twice=True,
            ).numpy()  # fmt: skip

    def apply(beta):  # B^T H B beta, H = K_nm^T W K_nm + ridge K_mm
        u = b_apply(beta)
        return bt_apply(normal(u) + ridge * (k_mm_copy @ u))

    beta, residuals, converged = _cg(apply, bt_apply(rhs), lambda r: r, tol, max_iter)
    jitter = max(t.jitter, a_mat.jitter)
    return KernelRidgeFit(_unscale(b_apply(beta), y_scale), centres, jitter, len(residuals),
                          tuple(residuals), converged)  # fmt: skip


def _cross_matrix(spec, x, centres, kind, rows: int, dtype: np.dtype) -> np.ndarray:
    """K(x, centres) as one (N, m) C-ordered array of ``dtype``, computed in float64 row blocks."""
    out = np.empty((len(x), len(centres)), dtype=dtype)
    for i in range(0, len(x), rows):
        out[i : i + rows] = kernel_block(spec, x[i : i + rows], centres, kind)
    return out


def _chunk_rows(n: int, m: int, cols: int, rows: int) -> int:
    """Rows per reduction chunk: ~1,024, more where the (chunks, cols, m) partial sums
    would pass 64 MiB; never more than a block."""
    return max(1, min(rows, max(1024, -(-n * m * cols * 8 // (64 << 20)))))


def _reduction_partition(n: int, rows: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk bounds (each block of ``rows`` rows cut into ``chunk``-row pieces) and
    the index of each block's first chunk (with the chunk count appended)."""
    bounds, groups = [], []
    for lo in range(0, n, rows):
        groups.append(len(bounds))
        bounds.extend(range(lo, min(lo + rows, n), chunk))
    groups.append(len(bounds))
    bounds.append(n)
    return np.asarray(bounds, dtype=np.int64), np.asarray(groups, dtype=np.int64)


def _sum_in_order(parts) -> np.ndarray:
    """parts[0] + parts[1] + ..., left to right (a fixed order, unlike ``np.sum``)."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for part in parts[1:]:
        total += part
    return total


def _stored_normal(
    k_nm: np.ndarray,
    u: np.ndarray | None,
    w: np.ndarray,
    y=None,
    *,
    bounds: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """K^T diag(w) K u (or, with ``y``, K^T diag(w) y): one pass over K, float64 sums.

    Rows are cut into chunks (``bounds``; default: one partition of 1,024-row
    chunks); each chunk's (k, m) partial sum is accumulated row by row, the
    threads share out the chunks, and the partial sums are added in a fixed order
    (chunks within each group of ``groups``, then the groups): the result does not
    depend on the thread count.
    """
    n = len(k_nm)
    cols = (u if y is None else y).shape[1]
    if bounds is None:
        chunk = _chunk_rows(n, k_nm.shape[1], cols, max(n, 1))
        bounds, groups = _reduction_partition(n, max(n, 1), chunk)
    if y is None:
        ut = np.ascontiguousarray(u.T, dtype=np.float64)
    else:
        ut = np.ascontiguousarray((y * w[:, None]).T, dtype=np.float64)
    parts = _chunk_partials(k_nm, ut, w, bounds, y is None, torch.get_num_threads())
    sums = [_sum_in_order(parts[lo:hi]) for lo, hi in itertools.pairwise(groups)]
    return _sum_in_order(sums).T.copy()


def _chunk_partials(k, ut, w, bounds, normal: bool, threads: int) -> np.ndarray:
    """(chunks, cols, m): chunk c's K_c^T W_c K_c u (``normal``) or K_c^T v_c, rows of
    chunk c from bounds[c] to bounds[c + 1], each accumulated in row order."""
    parts = np.zeros((len(bounds) - 1, ut.shape[0], k.shape[1]))
    if _normal_rows is not None:
        _set_numba_threads(threads)
        _normal_rows(k, ut, w, bounds, parts, not normal)
    else:  # pragma: no cover - numba is a dependency
        for c in range(len(bounds) - 1):
            lo, hi = bounds[c], bounds[c + 1]
            block = k[lo:hi].astype(np.float64)
            s = ut[:, lo:hi].T if not normal else (block @ ut.T) * w[lo:hi, None]
            parts[c] = (block.T @ s).T
    return parts


def _set_numba_threads(n: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def _compile_normal_rows():
    try:
        import numba
    except ImportError:  # pragma: no cover
        return None

    @numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def normal_rows(k, ut, w, bounds, parts, transpose_only):  # pragma: no cover - compiled
        m = k.shape[1]
        cols = ut.shape[0]
        for t in numba.prange(len(bounds) - 1):
            lo, hi = bounds[t], bounds[t + 1]
            acc = parts[t]
            s = np.empty(cols)
            for i in range(lo, hi):
                row = k[i]
                if transpose_only:  # K^T v with v = ut[:, i]
                    for q in range(cols):
                        s[q] = ut[q, i]
                else:
                    for q in range(cols):
                        tot = 0.0
                        uq = ut[q]
                        for j in range(m):
                            tot += np.float64(row[j]) * uq[j]
                        s[q] = tot * w[i]
                for q in range(cols):
                    sq = s[q]
                    aq = acc[q]
                    for j in range(m):
                        aq[j] += np.float64(row[j]) * sq

    return normal_rows


_normal_rows = _compile_normal_rows()


def _block_slice(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """v[lo:hi] as its own array (a task: the worker keeps a block's weights)."""
    return np.ascontiguousarray(v[lo:hi])


def _kept_block_product(block, ut, w, chunk: int, normal: bool = False) -> np.ndarray:
    """One kept block's (cols, m) K_b^T W_b K_b u (``normal``) or K_b^T v_b (a task).

    The same chunks, compiled loop and order of sums as :func:`_stored_normal` uses
    for these rows serially, on one thread: bitwise the serial block sum.
    """
    bounds, _ = _reduction_partition(len(block), len(block), chunk)
    return _sum_in_order(_chunk_partials(block, np.ascontiguousarray(ut), w, bounds, normal, 1))


def _transpose_block(block: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One block's K_b^T v_b (a task; one BLAS thread, as :func:`gram.normal_block`)."""
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        return block.T @ np.ascontiguousarray(v)


def _cross_transpose_product(spec, x, centres, y, kind, pool) -> np.ndarray:
    """K_nm^T y = K(centres, x) @ y, by blocks of the centres' rows."""
    out = kernel_product(
        spec, centres, x, torch.from_numpy(np.ascontiguousarray(y)), kind=kind, pool=pool
    )
    return out.numpy()
