"""Kernel matrices of a spec without a second copy: in-place Gram panels and block products.

* :func:`gram_matrix` writes K(x, x) into one N x N Fortran-ordered NumPy
  buffer, a panel of rows at a time (each panel from :func:`kernel`, so the
  working set is a few panels, not a second N x N array). Both triangles are
  filled: a LAPACK Cholesky (``potrf``, lower) then overwrites only the lower
  triangle and the upper one keeps K for a retry with more jitter.
* :func:`kernel_product` computes K(x1, x2) @ v block by block and never holds
  the N1 x N2 matrix: the matrix-free products of the iterative solvers. Its
  blocks run on a :class:`dltheory.parallel.Pool` (serial, or Dask workers).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import threadpoolctl
import torch

from .._checks import as_float_tensor, check_choice, check_int, message
from ..parallel import Pool
from ..spec.layers import Serial
from . import fused
from .blocked import _diagonal_pass, kernel

__all__ = [
    "KernelKind",
    "block_product",
    "cross_blocks",
    "gram_matrix",
    "kernel_product",
    "panel_rows",
    "stored_normal_product",
]

KernelKind = Literal["nngp", "ntk"]
_PANEL_FRACTION = 0.05  # transient panels use at most this fraction of the Gram's memory
_ARRAYS_PER_PANEL = 3  # nngp, ntk and the input Gram of one panel, from ``kernel``
_RECYCLED_BYTES = 30 << 20  # < 32 MiB, glibc's largest dynamic mmap threshold
_TILE = 256  # side of a tile of the tiled Gram: its 512 kB buffer stays in L2
PRODUCT_MEMORY = 256 << 20  # bytes of kernel blocks alive at once in ``kernel_product``


def panel_rows(n_rows: int, n_cols: int, memory_budget: int | None = None) -> int:
    """Rows per panel so that one panel's ``kernel`` arrays stay within the budget.

    Default budget: 5 % of an ``n_cols`` x ``n_cols`` float64 Gram (at least 64 rows,
    at most 2048).

    >>> panel_rows(20_000, 20_000)
    333
    """
    n_rows = check_int("n_rows", n_rows, minimum=0)
    n_cols = check_int("n_cols", n_cols, minimum=0)
    if memory_budget is None:
        memory_budget = int(_PANEL_FRACTION * 8 * n_cols * n_cols)
    else:
        memory_budget = check_int("memory_budget", memory_budget, minimum=1)
    rows = memory_budget // (8 * _ARRAYS_PER_PANEL * max(n_cols, 1))
    return int(max(1, min(n_rows, max(64, min(2048, rows)))))


def _pick(state, kind: str) -> torch.Tensor:
    return state.nngp if kind == "nngp" else state.ntk


def gram_matrix(
    spec: Serial,
    x: Any,
    *,
    kind: KernelKind = "nngp",
    out: np.ndarray | None = None,
    block_rows: int | None = None,
) -> np.ndarray:
    """K(x, x) of the network output, written in row panels into one buffer.

    Panel i holds rows r = [i, i + b): its diagonal block K(x_r, x_r) comes from
    the symmetric ``kernel`` (exact diagonal), the rest K(x_r, x_{>r}) from the
    cross kernel, written to both triangles; so only the upper half of the pairs
    is evaluated (Lee et al. 2018 for the NNGP, Jacot et al. 2018 for the NTK).

    Args:
        spec: the network (``MLP(...)``).
        x: (N, n_0) inputs.
        kind: ``"nngp"`` (K) or ``"ntk"`` (Theta).
        out: an (N, N) float64 Fortran-ordered buffer to fill (``None``: allocate).
        block_rows: rows per panel (default: :func:`panel_rows`); for chains whose
            activations all have scalar closed forms, the side of a tile of the one
            tiled pass (default 256): each tile on and below the diagonal gets its
            x_a . x_b from a small BLAS product, runs through all layers and is
            written with its mirror (the only pass over ``out``).

    Returns:
        ``out`` (or a new Fortran-ordered array), symmetric, both triangles filled.

    >>> import torch
    >>> from dltheory import MLP
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> spec = MLP(depth=2, activation="relu", c_w=2.0)
    >>> bool(abs(gram_matrix(spec, x, block_rows=1) - spec.kernel(x).nngp.numpy()).max() < 1e-14)
    True
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64).detach()
    n = len(x)
    if out is None:
        out = np.empty((n, n), dtype=np.float64, order="F")
    elif (
        not isinstance(out, np.ndarray)
        or out.shape != (n, n)
        or out.dtype != np.float64
        or not out.flags.f_contiguous
    ):
        raise ValueError(
            message(
                "out",
                f"a Fortran-ordered float64 array of shape ({n}, {n})",
                getattr(out, "shape", type(out).__name__),
                "Allocate it with np.empty((n, n), order='F')",
            )
        )
    if _tiled(spec, x):
        _tiled_gram(spec, x, kind, out, _TILE if block_rows is None else block_rows)
        return out
    if block_rows is None:
        # Panels under glibc's largest mmap threshold are recycled from the heap instead
        # of being mapped (and page-faulted) afresh for every panel: twice as fast.
        b = min(panel_rows(n, n), max(64, _RECYCLED_BYTES // (8 * max(n, 1))))
    else:
        b = check_int("block_rows", block_rows, minimum=1)
    for i in range(0, n, b):
        j = min(i + b, n)
        out[i:j, i:j] = _pick(kernel(spec, x[i:j]), kind).numpy()
        if j < n:  # the lower triangle: contiguous columns of the Fortran buffer
            out[j:, i:j] = _pick(kernel(spec, x[i:j], x[j:]), kind).numpy().T
    _mirror_lower(out)
    return out


def _tiled(spec: Serial, x: torch.Tensor) -> bool:
    return (
        fused.nb is not None
        and spec.is_chain
        and x.device.type == "cpu"
        and fused.closed_forms_only(spec)
        and len(x) > 0
    )


def _tiled_gram(spec: Serial, x: torch.Tensor, kind: str, out: np.ndarray, tile: int) -> None:
    """The whole Gram in one buffer: one parallel pass of the fused loop over tiles of
    the lower triangle (each its own x_a . x_b by BLAS) that also writes their mirrors."""
    tile = check_int("block_rows", tile, minimum=1)
    n, n0 = x.shape
    spec.check_network()
    if spec.in_dim is not None and n0 != spec.in_dim:
        raise ValueError(
            message("x", f"inputs with in_dim={spec.in_dim} features", f"shape {tuple(x.shape)}")
        )
    diag = _diagonal_pass(spec, x, n0)
    program = fused._program(spec, n0)
    var = torch.stack(diag.variances).numpy() if diag.variances else np.zeros((1, n))
    n_tiles = -(-n // tile)
    ti, tj = np.triu_indices(n_tiles)
    sd = np.sqrt(var)
    isd = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)
    with fused.keep_torch_threads():
        xs = np.ascontiguousarray(x.numpy())
        with threadpoolctl.threadpool_limits(1, user_api="blas"):  # one BLAS thread per tile
            fused.gram_tiles(out.T, xs, float(n0), program, var, sd, isd, kind == "ntk", ti, tj,
                             tile)  # fmt: skip
    np.fill_diagonal(out, (diag.nngp if kind == "nngp" else diag.ntk)[-1].numpy())


def _mirror_lower(a: np.ndarray) -> None:
    """Copy the strict lower triangle of a Fortran-ordered array onto the upper one."""
    if fused.nb is not None:
        fused.mirror_upper(a.T)  # a.T is C-ordered: its upper triangle is a's lower one
        return
    n, b = len(a), 512  # pragma: no cover - numba is a dependency
    for i in range(0, n, b):  # pragma: no cover
        a[i : i + b, i + b :] = a[i + b :, i : i + b].T
        block = a[i : i + b, i : i + b]
        block[np.triu_indices(len(block), 1)] = block.T[np.triu_indices(len(block), 1)]


def block_product(
    spec: Serial, x1: torch.Tensor, x2: torch.Tensor, v: torch.Tensor, kind: str, twice: bool
) -> torch.Tensor:
    """One block's K(x1, x2) @ v, or K^T (K v) with ``twice`` (a Falkon step); a task.

    The arithmetic runs on the torch threads of the task (one by default), so the
    same block gives bitwise the same numbers serially and on a Dask worker.
    """
    _limit_numba_threads(torch.get_num_threads())
    k = _pick(kernel(spec, x1, x2), kind)
    kv = k @ v
    return k.T @ kv if twice else kv


def _limit_numba_threads(n: int) -> None:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def kernel_block(spec: Serial, x1: torch.Tensor, x2: torch.Tensor, kind: str) -> np.ndarray:
    """One block K(x1, x2) as a C-ordered float64 array (a task)."""
    _limit_numba_threads(torch.get_num_threads())
    return np.ascontiguousarray(_pick(kernel(spec, x1, x2), kind).numpy())


def cross_blocks(
    spec: Serial,
    x: Any,
    centres: Any,
    *,
    kind: KernelKind = "nngp",
    block_rows: int | None = None,
    pool: Pool | None = None,
) -> list[Any]:
    """K(x, centres) computed once, in row blocks that stay where they were computed.

    Serial: a list of (b, m) arrays. With a Dask pool: futures of the blocks, held
    in the workers' memory (each worker keeps its rows; 8 N m / n_workers bytes
    each). :func:`stored_normal_product` then multiplies with them.

    >>> import torch
    >>> from dltheory import MLP
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> blocks = cross_blocks(MLP(depth=1, activation="relu", c_w=2.0), x, x[:2], block_rows=2)
    >>> [b.shape for b in blocks]
    [(2, 2), (1, 2)]
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64).detach()
    centres = as_float_tensor("centres", centres, ndim=2, dtype=torch.float64).detach()
    if block_rows is None:
        block_rows = max(1, min(len(x), PRODUCT_MEMORY // (8 * _ARRAYS_PER_PANEL * len(centres))))
        if pool is not None:
            block_rows = min(block_rows, max(64, math.ceil(len(x) / 4)))
    b = check_int("block_rows", block_rows, minimum=1)
    starts = range(0, len(x), b)
    if pool is None:
        return [kernel_block(spec, x[i : i + b], centres, kind) for i in starts]
    c_ref = pool.scatter(centres)
    tasks = [{"spec": spec, "x1": x[i : i + b].clone(), "x2": c_ref, "kind": kind} for i in starts]
    return pool.persist(kernel_block, tasks)


def normal_block(block: np.ndarray, u: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """One block's K_b^T W_b (K_b u) (a task).

    One BLAS thread and one memory layout, here and on a worker: the same block
    gives bitwise the same numbers serially and distributed.
    """
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        ku = block @ np.ascontiguousarray(u)
        if weights is not None:
            ku *= weights[:, None]
        return block.T @ ku


def stored_normal_product(
    blocks: list[Any],
    u: np.ndarray,
    *,
    pool: Pool | None = None,
    weights: list[Any] | None = None,
) -> np.ndarray:
    """K^T W K u = sum_b K_b^T W_b K_b u over blocks from :func:`cross_blocks`, in block order.

    u: (m, k). With a Dask pool each block's product runs on the worker holding
    it (a distributed mat-vec); only u and the (m, k) partial sums travel.
    """
    ws = [None] * len(blocks) if weights is None else weights
    if pool is None:
        parts = [normal_block(b, u, w) for b, w in zip(blocks, ws, strict=True)]
    else:
        u_ref = pool.scatter(u)
        tasks = [{"block": b, "u": u_ref, "weights": w} for b, w in zip(blocks, ws, strict=True)]
        parts = pool.map(normal_block, tasks)
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def kernel_product(
    spec: Serial,
    x1: Any,
    x2: Any,
    v: Any,
    *,
    kind: KernelKind = "nngp",
    block_rows: int | None = None,
    pool: Pool | None = None,
    gram_twice: bool = False,
) -> torch.Tensor:
    """K(x1, x2) @ v without storing K: row blocks of x1, each a task on ``pool``.

    With ``gram_twice`` it returns K^T (K v) (the normal-equation product of
    Falkon, Rudi et al. 2017), summing the blocks' contributions in block order.

    Args:
        spec: the network.
        x1: (N1, n_0) inputs (rows); x2: (N2, n_0) inputs (columns).
        v: (N2,) or (N2, k) vector(s) (float64).
        kind: ``"nngp"`` or ``"ntk"``.
        block_rows: rows per block (default: blocks of ``PRODUCT_MEMORY`` bytes, and
            with a pool at most a quarter of the rows, so that workers share the work).
        pool: a :class:`dltheory.parallel.Pool` (``None``: serial, here).
        gram_twice: return K^T (K v) of shape (N2,) / (N2, k) instead.

    Returns:
        (N1,) / (N1, k) float64 tensor (or (N2,) / (N2, k) with ``gram_twice``).

    >>> import torch
    >>> from dltheory import MLP
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> spec = MLP(depth=1, activation="relu", c_w=2.0)
    >>> v = torch.ones(3, dtype=torch.float64)
    >>> bool(torch.allclose(kernel_product(spec, x, x, v, block_rows=2), spec.kernel(x).nngp @ v))
    True
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    x1 = as_float_tensor("x1", x1, ndim=2, dtype=torch.float64).detach()
    x2 = as_float_tensor("x2", x2, ndim=2, dtype=torch.float64).detach()
    v = as_float_tensor("v", v, dtype=torch.float64).detach()
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(
            message("x2", f"of {x1.shape[1]} features like x1", f"shape {tuple(x2.shape)}")
        )
    if v.ndim not in (1, 2) or len(v) != len(x2):
        raise ValueError(
            message("v", f"of shape ({len(x2)},) or ({len(x2)}, k)", f"shape {tuple(v.shape)}")
        )
    if block_rows is None:
        block_rows = max(1, min(len(x1), PRODUCT_MEMORY // (8 * _ARRAYS_PER_PANEL * len(x2))))
        if pool is not None:
            block_rows = min(block_rows, max(64, math.ceil(len(x1) / 4)))
    b = check_int("block_rows", block_rows, minimum=1)
    starts = range(0, len(x1), b)
    if pool is None:
        parts = [block_product(spec, x1[i : i + b], x2, v, kind, gram_twice) for i in starts]
    else:
        x2_ref, v_ref = pool.scatter(x2), pool.scatter(v)
        tasks = [
            # clone: a pickled torch view carries its whole storage (all of x1) per task
            {"spec": spec, "x1": x1[i : i + b].clone(), "x2": x2_ref, "v": v_ref, "kind": kind,
             "twice": gram_twice}
            for i in starts
        ]  # fmt: skip
        parts = pool.map(block_product, tasks)
    if not gram_twice:
        return torch.cat(parts)
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    return total
