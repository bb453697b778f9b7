"""Fused CPU backend for residual and LayerNorm specs of feature vectors.

The graph interpreter (:mod:`dltheory.kernels.graph`) makes several passes over
N1 x N2 arrays per rule; on a CPU the time goes to memory traffic. Here the spec is
compiled into a small stack program and one numba loop (threads over rows) carries
each row of pairs (K_ab, Theta_ab) through it, as :mod:`dltheory.kernels.fused` does
for MLP chains. The ops and the rules they implement (same formulas as the rules of
``GRAPH_RULES``):

* DENSE (c_w, c_b, lambda_w, lambda_b): Theta <- lambda_b + lambda_w K + c_w Theta,
  K <- c_b + c_w K;
* ACT (closed form code, its parameter, table slot): K <- E[s s], Theta <- E[s' s'] Theta,
  reading each input's variance from the slot's diagonal table;
* DUP / SWAP / MIX (g2, a2): a Residual gamma S + alpha F pushes h, runs S, swaps,
  runs F, and mixes K <- g2 K_S + a2 K_F (Theta likewise);
* NORM (slot, w_k, const): LayerNorm, K <- (K - m_a m_b) s_a s_b,
  Theta <- Theta s_a s_b + w_k K + const, with s = 1 / sqrt(V + eps).

The per-input tables (variances before activations, means and scales of LayerNorms)
come from the graph rules themselves run on each input alone, so both paths share
their diagonal. Specs with other kinds, pixels, or activations without a scalar
closed form run in the graph interpreter.
"""

from __future__ import annotations

import numpy as np
import torch

from ..spec.layers import Dense, Layer, Nonlinearity, Serial
from ..spec.normalization import LayerNorm
from ..spec.residual import Residual
from .fused import keep_torch_threads

try:
    import numba as nb
except ImportError:  # pragma: no cover
    nb = None

__all__ = ["available", "fused_graph_kernel"]

_DENSE, _ACT, _DUP, _SWAP, _MIX, _NORM = range(6)


def available(spec: Serial, x: torch.Tensor) -> bool:
    """Whether the fused loop can run ``spec`` on ``x`` (CPU, feature vectors, closed forms)."""
    if nb is None or x.device.type != "cpu" or x.ndim != 2:
        return False

    def ok(layers: tuple[Layer, ...]) -> bool:
        for layer in layers:
            kind = type(layer)
            if kind is Nonlinearity and not layer.activation.pair_code:
                return False
            if kind is Residual and not (ok(layer.branch) and ok(layer.skip)):
                return False
            if kind not in (Dense, Nonlinearity, Residual, LayerNorm):
                return False
        return True

    return ok(spec.layers)


class _Compiler:
    """Walks the spec on the inputs' own variances, emitting ops and diagonal tables."""

    def __init__(self, width: int | None) -> None:
        self.ops: list[tuple[float, ...]] = []
        self.acts: list[torch.Tensor] = []  # variances before each ACT, (N,)
        self.norms: list[tuple[torch.Tensor, torch.Tensor]] = []  # (mean, scale) per NORM
        self.width = width

    def run(self, layers, var, mean, fan_in, gaussian=True):
        from .graph import check_gaussian_input
        from .normalization import activation_mean

        for layer in layers:
            kind = type(layer)
            if kind is Dense:
                lr_w, lr_b = layer.learning_rates(fan_in)
                self.ops.append((_DENSE, layer.c_w, layer.c_b, lr_w, lr_b))
                var, mean, gaussian = layer.c_b + layer.c_w * var, None, True
                fan_in = layer.width if layer.width is not None else self.width
            elif kind is Nonlinearity:
                act = layer.activation
                check_gaussian_input(act.name, gaussian)
                gaussian = False
                self.ops.append((_ACT, act.pair_code, act.pair_param, len(self.acts), 0.0))
                self.acts.append(var)
                var, mean = act.nngp_map(var, var, var), activation_mean(act, var)
            elif kind is LayerNorm:
                m = torch.zeros_like(var) if mean is None else mean
                v = var - m.square()
                scale = (v + layer.eps).rsqrt()
                w_k, const = layer.ntk_shift()
                self.ops.append((_NORM, len(self.norms), w_k, const, 0.0))
                self.norms.append((m, scale))
                var, mean = v * scale.square(), None
            else:  # Residual
                self.ops.append((_DUP, 0, 0, 0, 0))
                s_var, s_mean, _, s_gauss = self.run(layer.skip, var, mean, fan_in, gaussian)
                if layer.skip:  # an identity skip leaves two equal copies: no swap
                    self.ops.append((_SWAP, 0, 0, 0, 0))
                f_var, _, fan_in, _ = self.run(layer.branch, var, mean, fan_in, gaussian)
                g2, a2 = layer.gamma**2, layer.alpha**2
                self.ops.append((_MIX, g2, a2, 0, 0))
                var = g2 * s_var + a2 * f_var
                mean = None if s_mean is None or g2 == 0 else layer.gamma * s_mean
                gaussian = s_gauss or g2 == 0
        return var, mean, fan_in, gaussian


def _tables(spec: Serial, x: torch.Tensor):
    c = _Compiler(spec.width)
    var, _, _, _ = c.run(spec.layers, x.square().sum(-1) / x.shape[1], None, x.shape[1])
    program = np.asarray(c.ops, dtype=np.float64)
    acts = torch.stack(c.acts).numpy() if c.acts else np.zeros((1, len(x)))
    if c.norms:
        means = torch.stack([m for m, _ in c.norms]).numpy()
        scales = torch.stack([s for _, s in c.norms]).numpy()
    else:
        means = scales = np.zeros((1, len(x)))
    depth = sum(int(op[0] == _DUP) for op in c.ops)
    return program, acts, means, scales, var, depth


if nb is not None:
    from ..activations.closed_form import closed_pair_row
    from .fused import relu_row

    @nb.njit(inline="always", error_model="numpy")
    def _row(k, t, sk, st, program, i, j0, j1, tab1, tab2):
        """One row of pairs k[j] = (x_i, x_{j0 + j}) through the program, in place."""
        act1, act2, sd1, sd2, isd1, isd2, mean1, mean2, scale1, scale2 = (
            tab1[0], tab2[0], tab1[1], tab2[1], tab1[2], tab2[2],
            tab1[3], tab2[3], tab1[4], tab2[4],
        )  # fmt: skip
        m = k.shape[0]
        top = 0
        for row in range(program.shape[0]):
            op = program[row, 0]
            if op == 0:
                c_w, c_b = program[row, 1], program[row, 2]
                lr_w, lr_b = program[row, 3], program[row, 4]
                for j in range(m):
                    t[j] = lr_b + lr_w * k[j] + c_w * t[j]
                    k[j] = c_b + c_w * k[j]
            elif op == 1:
                slot = np.int64(program[row, 3])
                code = np.int64(program[row, 1])
                if code == 1:
                    relu_row(k, t, sd1[slot, i], isd1[slot, i], sd2[slot, j0:j1],
                             isd2[slot, j0:j1])  # fmt: skip
                else:
                    closed_pair_row(code, program[row, 2], act1[slot, i], k, act2[slot, j0:j1], t)
            elif op == 2:  # DUP
                for j in range(m):
                    sk[top, j] = k[j]
                    st[top, j] = t[j]
                top += 1
            elif op == 3:  # SWAP current and the top of the stack
                for j in range(m):
                    a, b = sk[top - 1, j], st[top - 1, j]
                    sk[top - 1, j], st[top - 1, j] = k[j], t[j]
                    k[j], t[j] = a, b
            elif op == 4:  # MIX: current = g2 * skip (stack top) + a2 * current
                g2, a2 = program[row, 1], program[row, 2]
                top -= 1
                for j in range(m):
                    k[j] = g2 * sk[top, j] + a2 * k[j]
                    t[j] = g2 * st[top, j] + a2 * t[j]
            else:  # NORM
                slot = np.int64(program[row, 1])
                w_k, const = program[row, 2], program[row, 3]
                m1, s1 = mean1[slot, i], scale1[slot, i]
                for j in range(m):
                    s = s1 * scale2[slot, j0 + j]
                    k[j] = (k[j] - m1 * mean2[slot, j0 + j]) * s
                    t[j] = t[j] * s + w_k * k[j] + const

    @nb.njit(parallel=True, cache=True, error_model="numpy")
    def _loop(out_k, out_t, n0, program, tab1, tab2, depth, symmetric, tiles_i, tiles_j, tile):
        """In place: out_k holds x_a . x_b (its upper triangle with ``symmetric``) and
        gets K, out_t gets Theta. Tile by tile (a row of pairs at a time through the
        whole program, in cache); with ``symmetric`` tiles on and above the diagonal,
        each written back with its mirror."""
        n1, n2 = out_k.shape
        for p in nb.prange(tiles_i.shape[0]):
            r0, c0 = tiles_i[p] * tile, tiles_j[p] * tile
            r1, c1 = min(r0 + tile, n1), min(c0 + tile, n2)
            diagonal = symmetric and r0 == c0
            bk = np.empty((r1 - r0, c1 - c0))
            bt = np.empty((r1 - r0, c1 - c0))
            sk = np.empty((max(depth, 1), c1 - c0))
            st = np.empty((max(depth, 1), c1 - c0))
            for i in range(r0, r1):
                j0 = i if diagonal else c0
                k = bk[i - r0, j0 - c0 :]
                t = bt[i - r0, j0 - c0 :]
                for j in range(c1 - j0):
                    k[j] = out_k[i, j0 + j] / n0
                    t[j] = 0.0
                _row(k, t, sk, st, program, i, j0, c1, tab1, tab2)
                for j in range(c1 - j0):
                    out_k[i, j0 + j] = k[j]
                    out_t[i, j0 + j] = t[j]
            if symmetric:
                for j in range(c0, c1):  # the mirror tile, row by row
                    for i in range(r0, min(r1, j)):
                        out_k[j, i] = bk[i - r0, j - c0]
                        out_t[j, i] = bt[i - r0, j - c0]


def _pack(act, mean, scale):
    """The per-input tables the loop reads: variances, their square roots and inverse
    square roots (0 where the variance is 0), LayerNorm means and scales."""
    sd = np.sqrt(act)
    isd = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)
    return act, sd, isd, mean, scale


def fused_graph_kernel(spec: Serial, x1: torch.Tensor, x2: torch.Tensor | None):
    """NNGP and NTK of ``spec`` by the fused loop (call only where :func:`available`)."""
    from .state import KernelState

    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    program, act1, mean1, scale1, var1, depth = _tables(spec, x1)
    if symmetric:
        act2, mean2, scale2, var2 = act1, mean1, scale1, var1
    else:
        _, act2, mean2, scale2, var2, _ = _tables(spec, x2)
    n1, n2, tile = len(x1), len(x2), 64
    out_k = np.empty((n1, n2))
    out_t = np.empty((n1, n2))
    torch.mm(x1, x2.T, out=torch.from_numpy(out_k))  # x_a . x_b; the loop divides by n_0
    if symmetric:  # the exact squared norms on the diagonal
        np.fill_diagonal(out_k, x1.square().sum(-1).numpy())
    n_t1, n_t2 = -(-n1 // tile), -(-n2 // tile)
    if symmetric:
        ti, tj = np.triu_indices(n_t1)
    else:
        ti, tj = np.divmod(np.arange(n_t1 * n_t2), n_t2)
    with keep_torch_threads():
        _loop(out_k, out_t, float(x1.shape[1]), program, _pack(act1, mean1, scale1),
              _pack(act2, mean2, scale2), depth, symmetric, ti, tj, tile)  # fmt: skip
    nngp, ntk = torch.from_numpy(out_k), torch.from_numpy(out_t)
    if symmetric:
        nngp.diagonal().copy_(var1)
    return KernelState(nngp, ntk, var1, var2)
