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
from .attention import ATTENTION_RULES, plan_with_attention
from .conv import CONV_RULES, to_diagonal
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
    # Full layout only: each input's own pixel-pair covariance (N, *pixels, *pixels),
    # which pooling reads for the variances after it (None otherwise).
    self1: torch.Tensor | None = None
    self2: torch.Tensor | None = None
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

    def own_pairs(self, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An input's pixel variances shaped against its own (N, *pix, *pix) covariance."""
        tail = (1,) * len(self.pixels)
        return var.reshape(len(var), *self.pixels, *tail), var.reshape(
            len(var), *tail, *self.pixels
        )

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
    own = {}
    if state.self1 is not None:  # full image layout: the inputs' own pixel pairs too
        sides = (("self1", state.var1, state.self1), ("self2", state.var2, state.self2))
        own = {name: act.nngp_map(*_own(state, v, c)) for name, v, c in sides}
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=act.nngp_map(state.var1, state.var1, state.var1),
        var2=act.nngp_map(state.var2, state.var2, state.var2),
        mean1=activation_mean(act, state.var1),
        mean2=activation_mean(act, state.var2),
        gaussian=False,
        **own,
    )


def _own(state: PairState, var: torch.Tensor, own: torch.Tensor):
    k11, k22 = state.own_pairs(var)
    return k11, own, k22


# One row per layer kind (new kinds add their row; tests/spec checks the coverage).
GRAPH_RULES: dict[type[Layer], Callable[[Any, PairState, GraphContext], PairState]] = {
    Dense: _dense,
    Nonlinearity: _nonlinearity,
    Residual: residual_rule,
    LayerNorm: layer_norm_rule,
    **CONV_RULES,  # Conv, AvgPool, GlobalAvgPool, Flatten (kernels/conv.py)
    **ATTENTION_RULES,  # SelfAttention (kernels/attention.py)
}


def run_layers(
    layers: tuple[Layer, ...],
    state: PairState,
    ctx: GraphContext,
    full_input: tuple[bool, ...] | None = None,
) -> PairState:
    """Map the state through ``layers`` in order (combinators call this on branches).

    ``full_input`` (the layout plan of :func:`dltheory.kernels.conv.plan_layout`): a
    full pixel-pair state drops to its pixel diagonal before a layer that reads no more.
    """
    for i, layer in enumerate(layers):
        if full_input is not None and state.full and not full_input[i]:
            state = to_diagonal(state)
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


_ARRAYS_PER_ENTRY = 10  # float64 arrays of one block's size alive at once inside a layer


def _inputs(name: str, x: Any, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    """Feature vectors (N, n_0), or images (N, C, L) / (N, C, H, W) as torch lays them out."""
    x = as_float_tensor(name, x, dtype=torch.float64)
    if input_shape is not None:
        size = math.prod(input_shape)
        if x.ndim != 2 or x.shape[1] != size:
            raise ValueError(
                message(
                    name,
                    f"rows of {size} features (flattened images of input_shape {input_shape})",
                    f"shape {tuple(x.shape)}",
                )
            )
        x = x.reshape(len(x), *input_shape)
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            message(
                name,
                "a 2-D (N, features), 3-D (N, C, L) or 4-D (N, C, H, W) array",
                f"shape {tuple(x.shape)}",
                "Pass images as torch lays them out, or flat rows with input_shape=(C, H, W)",
            )
        )
    return x


def _check_channels(spec: Serial, x: torch.Tensor) -> None:
    channels = x.shape[1]
    first = spec.layers[0]
    known = getattr(first, "in_channels", None)
    if known is None and x.ndim > 2:
        known = spec.in_dim
    if known is not None and known != channels:
        raise ValueError(
            message(
                "x1",
                f"inputs with {known} channels (the first layer's input channels)",
                f"{channels} channels (shape {tuple(x.shape)})",
            )
        )


def block_bytes(rows: int, cols: int, entries: int, own_entries: int) -> int:
    """Working bytes of one block of rows x cols input pairs (float64)."""
    own = (rows + cols) * own_entries if own_entries > 1 else rows + cols
    return 8 * _ARRAYS_PER_ENTRY * (rows * cols * entries + own)


def graph_kernel(
    spec: Serial,
    x1: Any,
    x2: Any = None,
    *,
    memory_budget: int,
    block_size: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    backend: str = "auto",
):
    """NNGP and NTK of a spec of any layer kinds, in blocks of input pairs.

    Blocks of rows x columns run through every layer; without ``x2`` only blocks on
    and above the diagonal are computed and mirrored. Images keep the full pixel-pair
    covariance only up to the last pooling layer (:func:`~dltheory.kernels.conv.plan_layout`);
    the bytes of a block are estimated before any work, and the largest block side under
    ``memory_budget`` is used (refused, with the estimate, when one pair does not fit).

    Args:
        input_shape: (C, H, W) or (C, L) when ``x1`` / ``x2`` are flattened rows.
        progress: show a progress bar over the blocks (rich).
        backend: ``"fused"`` (images on the CPU: each pair through every layer in one
            compiled loop, :mod:`dltheory.kernels.conv_fused`), ``"torch"`` (the rules,
            any device) or ``"auto"`` (fused where it applies).
    """
    from .conv import image_state, plan_layout
    from .state import KernelState

    if input_shape is None:
        input_shape = getattr(spec, "input_shape", None)
    x1 = _inputs("x1", x1, input_shape)
    symmetric = x2 is None
    x2 = x1 if symmetric else _inputs("x2", x2, input_shape)
    if x2.shape[1:] != x1.shape[1:]:
        raise ValueError(
            message("x2", f"inputs shaped like x1's {tuple(x1.shape[1:])}", tuple(x2.shape))
        )
    if x2.device != x1.device:
        raise ValueError(message("x2", f"on the device of x1 ({x1.device})", str(x2.device)))
    _check_channels(spec, x1)
    pixels = tuple(x1.shape[2:])
    if backend != "torch" and not pixels and fused_graph.available(spec, x1):
        # residual / LayerNorm MLPs: one compiled loop (kernels/fused_graph.py)
        return fused_graph.fused_graph_kernel(spec, x1, None if symmetric else x2)
    plan = plan_layout(spec.layers, pixels)
    plan = plan_with_attention(spec.layers, plan)  # attention reads position pairs
    full = bool(pixels) and plan.full_input[0]
    ctx = GraphContext(width=spec.width)
    n1, n2 = len(x1), len(x2)
    if pixels and backend != "torch":
        from . import conv_fused

        if conv_fused.available(spec, x1.device):
            return _fused_images(spec, x1, None if symmetric else x2, plan, memory_budget, progress)
        if backend == "fused":
            raise ValueError(
                message(
                    "backend",
                    "'auto' or 'torch' for this spec",
                    backend,
                    "The fused image engine needs numba, CPU tensors and activations "
                    "with a scalar closed form",
                )
            )
    entries = max(plan.entries, 2 * max(1, len(spec.layers) // 4))
    if block_size is None:
        one = block_bytes(1, 1, entries, plan.own_entries)
        if one > memory_budget:
            raise ValueError(
                message(
                    "memory_budget",
                    f"at least {one:,} bytes (one input pair of this spec on inputs "
                    f"of shape {tuple(x1.shape[1:])})",
                    memory_budget,
                    "Raise memory_budget, or use smaller images / fewer pooled layers",
                )
            )
        block_size = 1
        while (
            block_size < max(n1, n2)
            and block_bytes(2 * block_size, 2 * block_size, entries, plan.own_entries)
            <= memory_budget
        ):
            block_size *= 2
        while (
            block_size < max(n1, n2)
            and block_bytes(block_size + 1, block_size + 1, entries, plan.own_entries)
            <= memory_budget
        ):
            block_size += max(1, block_size // 8)
        block_size = min(block_size, max(n1, n2))
    block_size = check_int("block_size", block_size, minimum=1)
    nngp = torch.empty(n1, n2, dtype=torch.float64, device=x1.device)
    ntk = torch.empty_like(nngp)
    var1 = torch.empty(n1, dtype=torch.float64, device=x1.device)
    var2 = var1 if symmetric else torch.empty(n2, dtype=torch.float64, device=x1.device)
    tasks = [
        (i, j)
        for i in range(0, n1, block_size)
        for j in range(i if symmetric else 0, n2, block_size)
    ]
    bar = _progress(progress, len(tasks), n1, n2)
    for i, j in tasks:
        rows = slice(i, min(i + block_size, n1))
        cols = slice(j, min(j + block_size, n2))
        a, b = x1[rows], x2[cols]
        start = image_state(a, b, full) if pixels else _input_state(a, b)
        out = run_layers(spec.layers, start, ctx, plan.full_input)
        if out.pixels:
            raise ValueError(message("spec", "a network with a feature-vector output", out.pixels))
        if symmetric and i == j:
            upper = torch.triu(out.nngp, 1)
            out_nngp = upper + upper.T + torch.diag(out.var1)
            upper = torch.triu(out.ntk, 1)
            out_ntk = upper + upper.T + torch.diag(out.ntk.diagonal())
            nngp[rows, cols], ntk[rows, cols] = out_nngp, out_ntk
        else:
            nngp[rows, cols], ntk[rows, cols] = out.nngp, out.ntk
        if symmetric and i != j:
            nngp[cols, rows], ntk[cols, rows] = out.nngp.T, out.ntk.T
        if j == (i if symmetric else 0):
            var1[rows] = out.var1
        if not symmetric and i == 0:
            var2[cols] = out.var2
        if bar is not None:
            bar[0].advance(bar[1])
    if bar is not None:
        bar[0].stop()
    return KernelState(nngp, ntk, var1, var2)


def _fused_images(spec, x1, x2, plan, memory_budget: int, progress: bool):
    from .conv_fused import fused_image_kernel
    from .state import KernelState

    threads = torch.get_num_threads()
    n = len(x1) + (0 if x2 is None else len(x2))
    need = 8 * (4 * threads * max(plan.entries, 1) + n * len(spec.layers) * plan.entries**0.5)
    if need > memory_budget:
        raise ValueError(
            message(
                "memory_budget",
                f"at least {int(need):,} bytes (per-thread buffers of one image pair)",
                memory_budget,
                "Raise memory_budget, or use smaller images",
            )
        )
    n2 = len(x1) if x2 is None else len(x2)
    steps = max(1, len(x1) // 50)
    bar = _progress(progress, len(x1), len(x1), n2)
    on_step = None if bar is None else (lambda rows: bar[0].advance(bar[1], rows))
    nngp, ntk, var1, var2 = fused_image_kernel(spec, x1, x2, plan, steps, on_step)
    if bar is not None:
        bar[0].stop()
    return KernelState(nngp, ntk, var1, var2)


def _progress(show: bool, total: int, n1: int, n2: int):
    if not show:
        return None
    from rich.progress import Progress

    bar = Progress(transient=False)
    task = bar.add_task(f"kernel {n1} x {n2}", total=total)
    bar.start()
    return bar, task
