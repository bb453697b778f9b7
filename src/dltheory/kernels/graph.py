"""The infinite-width interpreter of any spec: one rule per layer kind, on ``PairState``.

The MLP chain (Dense / Nonlinearity only) keeps its fused and blocked engine
(:mod:`dltheory.kernels.blocked`); every other spec runs here. A rule maps the
kernel state of a block of input pairs through one layer:

    rule(layer, state, ctx) -> state

``PairState`` carries, for rows a (first inputs) and columns b (second inputs):

* ``nngp`` / ``ntk``: (N1, N2, *pair_axes), the per-channel covariance of the current
  representation E[h_a h_b] (the NNGP) and its tangent kernel;
* ``var1`` / ``var2``: (N1, *pixels) / (N2, *pixels), each input's own NNGP variance
  (at each pixel), which activations and normalisations read; every rule updates
  them with its own diagonal rule, so a block needs no separate diagonal pass;
* ``pixels``: the spatial shape, ``()`` for feature vectors (MLP layout);
* ``full``: ``pair_axes`` is ``pixels + pixels`` (the pixel-pair covariance that
  pooling reads) when True, ``pixels`` (the same-pixel diagonal) when False;
* ``fan_in``: features (channels) of the representation, for the next linear layer;
* ``mean1`` / ``mean2``: each input's mean feature E[h_a] (shaped like ``var1`` /
  ``var2``), ``None`` for a zero-mean representation (the output of a zero-mean weight
  layer); LayerNorm subtracts it;
* ``gaussian``: whether the representation is a Gaussian process (False after an
  activation until the next weight layer); activations read Gaussian inputs only.

Between layers the state always holds the covariance of the representation the next
layer reads (the input Gram x_a.x_b / n_0 at the start), so a Dense layer gives
K = C_b + C_w nngp and Theta = lambda_b + lambda_w nngp + C_w ntk (Jacot et al. 2018;
Lee et al. 2019, Eq. 9), an activation the dual maps of its Gaussian expectations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from .._checks import as_float_tensor, check_int, message
from ..spec.layers import Dense, Layer, Nonlinearity, Serial
from ..spec.normalization import LayerNorm
from ..spec.residual import Residual
from . import fused_graph
from .normalization import activation_mean, layer_norm_rule
from .residual import residual_rule

__all__ = ["GRAPH_RULES", "GraphContext", "PairState", "graph_kernel", "run_layers"]


@dataclass(frozen=True)
class PairState:
    """Kernel state of a block of input pairs (see the module docstring)."""

    nngp: torch.Tensor
    ntk: torch.Tensor
    var1: torch.Tensor
    var2: torch.Tensor
    fan_in: int | None
    pixels: tuple[int, ...] = ()
    full: bool = False
    mean1: torch.Tensor | None = None
    mean2: torch.Tensor | None = None
    gaussian: bool = True

    def k11(self) -> torch.Tensor:
        """``var1`` shaped to broadcast against ``nngp``."""
        n1 = self.var1.shape[0]
        if not self.pixels:
            return self.var1[:, None]
        if not self.full:
            return self.var1[:, None]
        tail = (1,) * len(self.pixels)
        return self.var1.reshape(n1, 1, *self.pixels, *tail)

    def k22(self) -> torch.Tensor:
        """``var2`` shaped to broadcast against ``nngp``."""
        n2 = self.var2.shape[0]
        if not self.pixels:
            return self.var2[None, :]
        if not self.full:
            return self.var2[None]
        tail = (1,) * len(self.pixels)
        return self.var2.reshape(1, n2, *tail, *self.pixels)

    def with_(self, **changes: Any) -> PairState:
        return replace(self, **changes)


@dataclass(frozen=True)
class GraphContext:
    """What rules may need beyond the state: the spec's default width."""

    width: int | None = None


def _dense(layer: Dense, state: PairState, ctx: GraphContext) -> PairState:
    if state.pixels:
        raise ValueError(
            message(
                "spec",
                "a network whose Dense layers read feature vectors",
                f"Dense after a representation of spatial shape {state.pixels}",
                "Put Flatten or global average pooling before the Dense layer",
            )
        )
    lr_w, lr_b = layer.learning_rates(state.fan_in)
    ntk = torch.add(state.ntk * layer.c_w, state.nngp, alpha=lr_w).add_(lr_b)
    nngp = (state.nngp * layer.c_w).add_(layer.c_b)
    width = layer.width if layer.width is not None else ctx.width
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=state.var1 * layer.c_w + layer.c_b,
        var2=state.var2 * layer.c_w + layer.c_b,
        fan_in=width,
    )


def check_gaussian_input(name: str, gaussian: bool) -> None:
    """Raise unless an activation's input is a Gaussian process (a weight layer's output)."""
    if not gaussian:
        raise ValueError(
            message(
                "spec",
                "a network whose activations read Gaussian preactivations",
                f"{name} after a non-Gaussian representation (an activation's output "
                "through LayerNorm or a skip connection)",
                "Put a Dense (or Conv) layer before the activation",
            )
        )


def _nonlinearity(layer: Nonlinearity, state: PairState, ctx: GraphContext) -> PairState:
    act = layer.activation
    check_gaussian_input(act.name, state.gaussian)
    k11, k22 = state.k11(), state.k22()
    ntk = act.ntk_map(k11, state.nngp, k22).mul_(state.ntk)
    nngp = act.nngp_map(k11, state.nngp, k22)
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=act.nngp_map(state.var1, state.var1, state.var1),
        var2=act.nngp_map(state.var2, state.var2, state.var2),
        mean1=activation_mean(act, state.var1),
        mean2=activation_mean(act, state.var2),
        gaussian=False,
    )


# One row per layer kind (new kinds add their row; tests/spec checks the coverage).
GRAPH_RULES: dict[type[Layer], Callable[[Any, PairState, GraphContext], PairState]] = {
    Dense: _dense,
    Nonlinearity: _nonlinearity,
    Residual: residual_rule,
    LayerNorm: layer_norm_rule,
}


def run_layers(layers: tuple[Layer, ...], state: PairState, ctx: GraphContext) -> PairState:
    """Map the state through ``layers`` in order (combinators call this on branches)."""
    for layer in layers:
        rule = GRAPH_RULES.get(type(layer))
        if rule is None:
            raise ValueError(
                message("spec", "made of layer kinds with a kernel rule", type(layer).__name__)
            )
        state = rule(layer, state, ctx)
        if type(layer).reads_input:  # a fresh zero-mean weight layer: a zero-mean GP again
            state = state.with_(mean1=None, mean2=None, gaussian=True)
    return state


def _input_state(x1: torch.Tensor, x2: torch.Tensor) -> PairState:
    """The input Gram x_a.x_b / n_0 of feature vectors (N, n_0)."""
    n0 = x1.shape[1]
    return PairState(
        nngp=x1 @ x2.T / n0,
        ntk=torch.zeros(len(x1), len(x2), dtype=x1.dtype, device=x1.device),
        var1=x1.square().sum(-1) / n0,
        var2=x2.square().sum(-1) / n0,
        fan_in=n0,
    )


def graph_kernel(
    spec: Serial,
    x1: Any,
    x2: Any = None,
    *,
    memory_budget: int,
    block_size: int | None = None,
    fused: bool = True,
):
    """NNGP and NTK of a spec of any layer kinds, in blocks of input pairs.

    Blocks of rows x columns run through every layer; without ``x2`` only blocks on
    and above the diagonal are computed and mirrored. With ``fused`` (CPU, feature
    vectors, closed-form activations) the compiled loop of
    :mod:`dltheory.kernels.fused_graph` runs instead.
    """
    from .state import KernelState

    x1 = as_float_tensor("x1", x1, ndim=2, dtype=torch.float64)
    symmetric = x2 is None
    x2 = x1 if symmetric else as_float_tensor("x2", x2, ndim=2, dtype=torch.float64)
    if x2.shape[1:] != x1.shape[1:]:
        raise ValueError(
            message("x2", f"inputs shaped like x1's {tuple(x1.shape[1:])}", tuple(x2.shape))
        )
    if fused and fused_graph.available(spec, x1):  # residual / LayerNorm MLPs: one loop
        return fused_graph.fused_graph_kernel(spec, x1, None if symmetric else x2)
    ctx = GraphContext(width=spec.width)
    n1, n2 = len(x1), len(x2)
    if block_size is None:
        per_pair = 8 * 16 * max(1, len(spec.layers) // 4)
        block_size = max(1, min(max(n1, n2), 1024, int(math.sqrt(memory_budget / per_pair))))
    block_size = check_int("block_size", block_size, minimum=1)
    nngp = torch.empty(n1, n2, dtype=torch.float64, device=x1.device)
    ntk = torch.empty_like(nngp)
    var1 = var2 = None
    for i in range(0, n1, block_size):
        rows = slice(i, min(i + block_size, n1))
        for j in range(i if symmetric else 0, n2, block_size):
            cols = slice(j, min(j + block_size, n2))
            out = run_layers(spec.layers, _input_state(x1[rows], x2[cols]), ctx)
            nngp[rows, cols], ntk[rows, cols] = out.nngp, out.ntk
            if symmetric and i != j:
                nngp[cols, rows], ntk[cols, rows] = out.nngp.T, out.ntk.T
    # Each input's own variance at the output: the diagonal rules on a 1 x N pass.
    diag1 = run_layers(spec.layers, _input_state(x1[:1], x1), ctx).var2
    var1 = diag1
    var2 = diag1 if symmetric else run_layers(spec.layers, _input_state(x1[:1], x2), ctx).var2
    if symmetric:
        nngp.diagonal().copy_(var1)
        upper = torch.triu(nngp, 1)
        nngp.copy_(upper + upper.T + torch.diag(nngp.diagonal()))
        upper = torch.triu(ntk, 1)
        ntk.copy_(upper + upper.T + torch.diag(ntk.diagonal()))
    return KernelState(nngp, ntk, var1, var2)
