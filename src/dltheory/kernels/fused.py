"""Fused CPU backend: every pair of inputs runs through all layers in registers.

The torch interpreter (``recursion.py``) makes a few passes over N1 x N2 arrays
per layer; on a CPU the time goes to memory traffic and to allocations, not to
arithmetic. Here one compiled loop (numba, threads over rows) carries each pair
(K_ab, Theta_ab) through the whole network, reading only the per-input
variances of each layer: a constant number of passes over the output in total.

Nonlinearities come in two kinds:

* a closed form declared by the activation as a scalar numba function
  ``pair(k11, k12, k22) -> (E[s s], E[s' s'])`` (``Activation.pair``), tested
  against the activation's torch closed forms;
* any other activation: its Mehler series with Hermite-coefficient tables per
  input and layer (``quadrature.hermite_coefficients``), summed per pair until
  the Cauchy-Schwarz tail bound is below the tolerance relative to
  sqrt(E f^2 E g^2) of the pair.

A pair the series cannot certify (or a degenerate pair of unequal variances)
makes the backend report failure and the caller falls back to the torch
interpreter, which has a 2-D quadrature for such pairs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _fastmath
from ..activations import quadrature
from ..spec.layers import Dense, Nonlinearity, Serial

try:  # numba is a dependency, but the library works (slower) without it
    import numba as nb
except ImportError:  # pragma: no cover
    nb = None

__all__ = [
    "available",
    "closed_forms_only",
    "fused_kernel",
    "gram_tiles",
    "keep_torch_threads",
    "mirror_upper",
]

_DEGENERATE = 64 * np.finfo(np.float64).eps
_DEGREES = (48, 128)  # try a short series first; retry longer where pairs need it
_DENSE, _CLOSED, _SERIES = 0, 1, 2


def available(spec: Serial, device: torch.device) -> bool:
    """Whether the fused backend can run this spec on this device."""
    return nb is not None and device.type == "cpu"


def closed_forms_only(spec: Serial) -> bool:
    """Whether every nonlinearity of the chain ``spec`` has a scalar closed form."""
    return all(
        layer.activation.pair_code for layer in spec.layers if isinstance(layer, Nonlinearity)
    )


class keep_torch_threads:
    """Restore torch's thread count after numba's parallel loops.

    numba's OpenMP threading layer sets the process's OpenMP thread count when it
    launches a parallel loop (to NUMBA_NUM_THREADS, the cores, whatever
    OMP_NUM_THREADS says); torch reads the same OpenMP state, so without this
    ``torch.get_num_threads()`` goes from 1 to 2 after a kernel.
    """

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()

    def __exit__(self, *exc) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def _program(spec: Serial, fan_in: int) -> np.ndarray:
    """Rows (kind, c_w, c_b, lambda_w, lambda_b, pair_code, pair_param) in layer order."""
    rows, width = [], fan_in
    for layer in spec.layers:
        if isinstance(layer, Dense):
            lr_w, lr_b = layer.learning_rates(width)
            rows.append((_DENSE, layer.c_w, layer.c_b, lr_w, lr_b, 0, 0.0))
            width = layer.width if layer.width is not None else spec.width
        else:
            act = layer.activation
            kind = _CLOSED if act.pair_code else _SERIES
            rows.append((kind, 0.0, 0.0, 0.0, 0.0, act.pair_code, act.pair_param))
    return np.asarray(rows, dtype=np.float64)


class _Tables:
    """Hermite tables (n_series_layers, N, D + 1) for s and s', the square roots
    of their tails and the diagonal moments E[s^2], E[s'^2] at each input's variance."""

    def __init__(self, spec: Serial, variances: list[torch.Tensor], degree: int) -> None:
        acts = [layer.activation for layer in spec.layers if isinstance(layer, Nonlinearity)]
        series = [(a, v) for a, v in zip(acts, variances, strict=True) if not a.pair_code]
        n = len(variances[0]) if variances else 0
        shape = (max(len(series), 1), n if series else 1, degree + 1)
        self.f, self.g = np.zeros(shape), np.zeros(shape)
        self.tail_f, self.tail_g = np.zeros(shape), np.zeros(shape)
        self.m_f, self.m_g = np.zeros(shape[:2]), np.zeros(shape[:2])
        for s, (act, var) in enumerate(series):
            var = var.cpu()
            for coef, tail, mom, fn in (
                (self.f, self.tail_f, self.m_f, act.fn),
                (self.g, self.tail_g, self.m_g, act.d1),
            ):
                c, m = quadrature.hermite_coefficients(fn, var, degree, act.kinks)
                c, m = c.numpy(), m.numpy()
                coef[s], mom[s] = c, m
                # sqrt of tail_k = E f^2 - sum_{j <= k} c_j^2, never below rounding.
                tail[s] = np.sqrt(
                    np.maximum(m[:, None] - np.cumsum(c * c, axis=1), 0) + 4e-16 * m[:, None]
                )


if nb is not None:
    from ..activations.closed_form import closed_pair_row

    @nb.njit(cache=True)
    def _series(f1, f2, r1, r2, rho, tol):
        """sum_k c_k(k11) c_k(k22) rho^k, stopped once |rho|^(k+1) sqrt(t1_k t2_k) <= tol
        (r = sqrt of the tails), checked every 4 terms; also says if it converged."""
        total, power = 0.0, 1.0
        n = f1.shape[0]
        for k0 in range(0, n, 4):
            for k in range(k0, min(k0 + 4, n)):
                total += f1[k] * f2[k] * power
                power *= rho
            last = min(k0 + 4, n) - 1
            if abs(power) * r1[last] * r2[last] <= tol:
                return total, True
        return total, False

    @nb.njit(parallel=True, cache=True)
    def _mirror_upper(a):
        """a[j, i] = a[i, j] for j > i, in 64 x 64 tiles (cache-friendly transpose)."""
        n = a.shape[0]
        tile = 64
        n_tiles = (n + tile - 1) // tile
        for bi in nb.prange(n_tiles):
            for bj in range(bi, n_tiles):
                for i in range(bi * tile, min((bi + 1) * tile, n)):
                    for j in range(max(bj * tile, i + 1), min((bj + 1) * tile, n)):
                        a[j, i] = a[i, j]

    # error_model="numpy": Python's zero-division checks (a branch per division) keep
    # LLVM from vectorising the pair loops; every division there is guarded anyway.
    @nb.njit(parallel=True, cache=True, error_model="numpy")
    def _run(
        gram,
        var1,
        var2,
        program,
        tf1,
        tf2,
        tg1,
        tg2,
        rf1,
        rf2,
        rg1,
        rg2,
        mf1,
        mg1,
        mf2,
        mg2,
        symmetric,
        tol,
        out_k,
        out_t,
        layers_k,
        layers_t,
        collect,
    ):
        n1, _n2 = gram.shape
        failed = np.zeros(n1, dtype=np.bool_)
        snap = 1 - 64 * 2.220446049250313e-16
        for r in nb.prange(n1):
            # Interleave short and long rows of the triangle across threads.
            half = np.int64(r) // 2
            i = half if np.int64(r) % 2 == 0 else np.int64(n1) - 1 - half
            j0 = i if symmetric else 0
            # One row of pairs stays in cache through every layer.
            k = out_k[i, j0:]
            t = out_t[i, j0:]
            k[:] = gram[i, j0:]
            t[:] = 0.0
            m = k.shape[0]
            nl, ns, nd = 0, 0, 0
            for row in range(program.shape[0]):
                kind = program[row, 0]
                if kind == 0:
                    c_w, c_b = program[row, 1], program[row, 2]
                    lr_w, lr_b = program[row, 3], program[row, 4]
                    for j in range(m):
                        t[j] = lr_b + lr_w * k[j] + c_w * t[j]
                        k[j] = c_b + c_w * k[j]
                    if collect:
                        layers_k[nd, i, j0:] = k
                        layers_t[nd, i, j0:] = t
                    nd += 1
                elif kind == 1:
                    code, param = np.int64(program[row, 5]), program[row, 6]
                    closed_pair_row(code, param, var1[nl, i], k, var2[nl, j0:], t)
                    nl += 1
                else:
                    v1 = var1[nl, i]
                    for j in range(m):
                        v2 = var2[nl, j0 + j]
                        a1, a2 = math.sqrt(v1), math.sqrt(v2)  # no v1 * v2: overflow
                        rho = (k[j] / a1) / a2 if a1 > 0 and a2 > 0 else 0.0
                        rho = min(1.0, max(-1.0, rho))
                        if abs(rho) >= snap:
                            rho = 1.0 if rho > 0 else -1.0
                        if rho == 1.0 and v1 == v2:  # the same input: its 1-D moments
                            a, b = mf1[ns, i], mg1[ns, i]
                        else:  # at rho = +-1 only converged tails certify the sum
                            # Relative tolerance: |E f g| <= sqrt(E f^2 E g^2) sets the scale
                            # of each map (E[s' s'] may be 1e-8 and multiply Theta ~ 1e8).
                            tol_f = tol * math.sqrt(mf1[ns, i] * mf2[ns, j0 + j]) + 1e-300
                            tol_g = tol * math.sqrt(mg1[ns, i] * mg2[ns, j0 + j]) + 1e-300
                            a, ok1 = _series(
                                tf1[ns, i], tf2[ns, j0 + j], rf1[ns, i], rf2[ns, j0 + j], rho, tol_f
                            )
                            b, ok2 = _series(
                                tg1[ns, i], tg2[ns, j0 + j], rg1[ns, i], rg2[ns, j0 + j], rho, tol_g
                            )
                            if not (ok1 and ok2):
                                failed[i] = True
                        k[j] = a
                        t[j] *= b
                    nl += 1
                    ns += 1
        return failed

    @nb.njit(inline="always", error_model="numpy")
    def relu_row(k, t, sd1, isd1, sd2, isd2):
        """ReLU's arc-cosine maps over a row of pairs, in place (k <- E[s s],
        t <- t E[s' s']; Cho & Saul 2009), from each input's standard deviation sd
        and its inverse isd (0 where sd = 0): multiplications where the closed form
        of ``closed_form`` divides, and fdlibm's rational arccos, so the loop
        vectorises. Rounding differs from ``closed_pair_row`` by a few ulps."""
        snap = 1 - 64 * 2.220446049250313e-16
        inv_2pi = 0.15915494309189535  # 1 / (2 pi), correctly rounded
        for j in range(k.shape[0]):
            rho = k[j] * isd1 * isd2[j]
            rho = min(1.0, max(-1.0, rho))
            rho = 1.0 if rho >= snap else rho
            rho = -1.0 if rho <= -snap else rho
            angle = math.pi - _fastmath.acos_rational(rho)
            sin = math.sqrt(max((1 - rho) * (1 + rho), 0.0))
            k[j] = (sd1 * sd2[j]) * (sin + angle * rho) * inv_2pi
            t[j] *= angle * inv_2pi


if nb is not None:

    @nb.njit(inline="always", error_model="numpy")
    def _program_row(k, tt, program, sd, isd, var, i, j0, c1):
        """One row of pairs k[j] = (x_i, x_{j0 + j}) of a closed-form chain, in place."""
        m = k.shape[0]
        nl = 0
        for row in range(program.shape[0]):
            if program[row, 0] == 0:
                c_w, c_b = program[row, 1], program[row, 2]
                lr_w, lr_b = program[row, 3], program[row, 4]
                for j in range(m):
                    tt[j] = lr_b + lr_w * k[j] + c_w * tt[j]
                    k[j] = c_b + c_w * k[j]
            else:
                code, param = np.int64(program[row, 5]), program[row, 6]
                if code == 1:
                    relu_row(k, tt, sd[nl, i], isd[nl, i], sd[nl, j0:c1], isd[nl, j0:c1])
                else:
                    closed_pair_row(code, param, var[nl, i], k, var[nl, j0:c1], tt)
                nl += 1

    @nb.njit(parallel=True, cache=True, error_model="numpy")
    def gram_tiles(a, x, n0, program, var, sd, isd, ntk, tiles_i, tiles_j, tile):
        """K (or Theta with ``ntk``) of a closed-form chain (``program``) into the
        square ``a``, both triangles, exactly symmetric; the diagonal is left to the
        caller (the exact 1-D recursion).

        Each tile (tiles_i[p], tiles_j[p]) on or above the diagonal forms its x_a . x_b
        by a small matrix product of the inputs (BLAS on a tile x n_0 panel), runs
        through the program a row of pairs at a time in cache, and is written back with
        its mirror: ``a`` is only written, once, by the worker threads (its first
        touch), and the products of the tiles below the diagonal are never formed."""
        n = a.shape[0]
        for p in nb.prange(tiles_i.shape[0]):
            r0, c0 = tiles_i[p] * tile, tiles_j[p] * tile
            r1, c1 = min(r0 + tile, n), min(c0 + tile, n)
            diagonal = r0 == c0
            buf = np.dot(x[r0:r1], x[c0:c1].T)
            t = np.empty(c1 - c0)
            for i in range(r0, r1):
                j0 = i if diagonal else c0
                m = c1 - j0
                k = buf[i - r0, j0 - c0 :]
                for j in range(m):
                    k[j] = k[j] / n0
                    t[j] = 0.0
                tt = t[:m]
                _program_row(k, tt, program, sd, isd, var, i, j0, c1)
                if ntk:
                    for j in range(m):
                        k[j] = tt[j]
                for j in range(m):
                    a[i, j0 + j] = k[j]
            for j in range(c0, c1):  # the mirror tile, row by row of a
                for i in range(r0, min(r1, j)):
                    a[j, i] = buf[i - r0, j - c0]


def mirror_upper(a: np.ndarray) -> None:
    """a[j, i] = a[i, j] for j > i (C-ordered square ``a``), by a parallel tiled copy."""
    with keep_torch_threads():
        _mirror_upper(a)


def fused_kernel(
    spec: Serial,
    gram: torch.Tensor,
    fan_in: int,
    var1: list[torch.Tensor],
    var2: list[torch.Tensor],
    *,
    symmetric: bool,
    collect: bool,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the fused loop on all pairs.

    Returns (nngp, ntk, layers_nngp, layers_ntk, failed_rows) as NumPy arrays;
    with ``symmetric`` only the upper triangle (j >= i) is filled. Rows in
    ``failed_rows`` hold a pair the series could not certify: recompute them.
    """
    program = _program(spec, fan_in)
    g = gram.numpy()
    n1, n2 = g.shape
    v1 = np.stack([v.numpy() for v in var1]) if var1 else np.zeros((1, n1))
    v2 = np.stack([v.numpy() for v in var2]) if var2 else np.zeros((1, n2))
    n_dense = int((program[:, 0] == _DENSE).sum())
    out_k, out_t = np.zeros((n1, n2)), np.zeros((n1, n2))
    shape = (n_dense, n1, n2) if collect else (1, 1, 1)
    layers_k, layers_t = np.zeros(shape), np.zeros(shape)
    has_series = bool((program[:, 0] == _SERIES).any())
    failed = np.zeros(n1, dtype=bool)
    for degree in _DEGREES if has_series else (0,):
        t1 = _Tables(spec, var1, degree)
        t2 = t1 if symmetric else _Tables(spec, var2, degree)
        tables = (t1.f, t2.f, t1.g, t2.g, t1.tail_f, t2.tail_f, t1.tail_g, t2.tail_g)
        with keep_torch_threads():
            failed = _run(g, v1, v2, program, *tables, t1.m_f, t1.m_g, t2.m_f, t2.m_g, symmetric,
                          tol, out_k, out_t, layers_k, layers_t, collect)  # fmt: skip
        # A few failed rows are cheaper to recompute than a longer series for all.
        if failed.sum() <= 0.05 * n1:
            break
    return out_k, out_t, layers_k, layers_t, failed
