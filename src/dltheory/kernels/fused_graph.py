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
    from .fused import mirror_upper

    @nb.njit(parallel=True, cache=True)
    def _loop(
        gram, program, act1, act2, mean1, mean2, scale1, scale2, depth, symmetric, out_k, out_t
    ):
        n1 = gram.shape[0]
        for r in nb.prange(n1):
            # Interleave short and long rows of the triangle across threads.
            half = np.int64(r) // 2
            i = half if np.int64(r) % 2 == 0 else np.int64(n1) - 1 - half
            j0 = i if symmetric else 0
            k = out_k[i, j0:]
            t = out_t[i, j0:]
            m = k.shape[0]
            k[:] = gram[i, j0:]
            t[:] = 0.0
            stack_k = np.empty((max(depth, 1), m))
            stack_t = np.empty((max(depth, 1), m))
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
                    closed_pair_row(code, program[row, 2], act1[slot, i], k, act2[slot, j0:], t)
                elif op == 2:  # DUP
                    stack_k[top] = k
                    stack_t[top] = t
                    top += 1
                elif op == 3:  # SWAP current and the top of the stack
                    for j in range(m):
                        a, b = stack_k[top - 1, j], stack_t[top - 1, j]
                        stack_k[top - 1, j], stack_t[top - 1, j] = k[j], t[j]
                        k[j], t[j] = a, b
                elif op == 4:  # MIX: current = g2 * skip (stack top) + a2 * current
                    g2, a2 = program[row, 1], program[row, 2]
                    top -= 1
                    for j in range(m):
                        k[j] = g2 * stack_k[top, j] + a2 * k[j]
                        t[j] = g2 * stack_t[top, j] + a2 * t[j]
                else:  # NORM
                    slot = np.int64(program[row, 1])
                    w_k, const = program[row, 2], program[row, 3]
                    m1, s1 = mean1[slot, i], scale1[slot, i]
                    for j in range(m):
                        s = s1 * scale2[slot, j0 + j]
                        k[j] = (k[j] - m1 * mean2[slot, j0 + j]) * s
                        t[j] = t[j] * s + w_k * k[j] + const


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
    gram = (x1 @ x2.T / x1.shape[1]).numpy()
    if symmetric:
        np.fill_diagonal(gram, (x1.square().sum(-1) / x1.shape[1]).numpy())
    out_k = np.empty(gram.shape)
    out_t = np.empty(gram.shape)
    _loop(gram, program, act1, act2, mean1, mean2, scale1, scale2, depth, symmetric, out_k, out_t)
    if symmetric:  # rows computed j >= i only
        mirror_upper(out_k)
        mirror_upper(out_t)
    nngp, ntk = torch.from_numpy(out_k), torch.from_numpy(out_t)
    if symmetric:
        nngp.diagonal().copy_(var1)
    return KernelState(nngp, ntk, var1, var2)
