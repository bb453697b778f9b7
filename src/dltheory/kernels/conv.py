"""Kernel rules of the convolutional layer kinds, and the layout plan of image kernels.

The kernel of a pair of images (a, b) is the per-channel covariance of their
representations over pixel pairs, K_ab(i, j) = E[z_a(i) z_b(j)] (Novak et al. 2019,
"Bayesian deep convolutional networks with many channels are Gaussian processes",
Sec. 2.2 and Eq. (7); Garriga-Alonso et al. 2019, "Deep convolutional networks as
shallow Gaussian processes", Eq. (6)-(8)). With the shift average of a window of k
positions delta (stride s, dilation d, zero padding p),

    [A K](i, j) = (1/k) sum_delta K(s i + d delta - p, s j + d delta - p),

a conv layer maps

    K'     = C_b + C_w A K,
    Theta' = lambda_b + lambda_w A K + C_w A Theta

(the CNTK recursion of Arora et al. 2019, "On exact computation with an infinitely
wide neural net", Eq. (8)-(10), with their 1/q^2 window average; lambda as for a
dense layer with fan-in C_in k). An activation applies its dual maps entrywise with
each pixel's own variances K_aa(i, i), K_bb(j, j) (Novak et al. Eq. (8)); average
pooling averages over pairs of windows, K'(i, j) = (1/k^2) sum_{delta, delta'}
K(s i + delta - p, s j + delta' - p) (Novak et al. Sec. 3.2.2); global average
pooling over all pixel pairs (Eq. (17), the "GAP" readout); a flattened readout over
the pixel diagonal only, K' = (1/P) sum_i K(i, i) (Eq. (16), "vectorisation",
fan-in C P).

A conv layer's output at the pixel pair (i, j) reads its input at (i + delta, j + delta)
only, so without pooling downstream the same-pixel diagonal K(i, i) suffices (N^2 P
numbers instead of N^2 P^2). :func:`plan_layout` walks the spec backwards and keeps
the full pixel-pair covariance only up to the last pooling layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .._checks import message
from ..spec.conv import AvgPool, Conv, Flatten, GlobalAvgPool, output_size, padding_sizes
from ..spec.layers import Dense, Layer

if TYPE_CHECKING:  # graph.py imports this module for its table
    from .graph import GraphContext, PairState

__all__ = [
    "CONV_RULES",
    "LayoutPlan",
    "image_state",
    "plan_layout",
    "to_diagonal",
]


def _shift_mean(
    t: torch.Tensor,
    axes: tuple[int, ...],
    window: int,
    stride: int,
    dilation: int,
    pads: tuple[int, int],
    out: int,
) -> torch.Tensor:
    """(1/k) sum_delta t[..., s i + d delta - p, ...] on every axis of ``axes`` jointly."""
    lo, hi = pads
    if lo or hi:
        shape = list(t.shape)
        for ax in axes:
            shape[ax] += lo + hi
        padded = t.new_zeros(shape)
        inner = [slice(None)] * t.ndim
        for ax in axes:
            inner[ax] = slice(lo, lo + t.shape[ax])
        padded[tuple(inner)] = t
        t = padded
    acc = None
    for delta in range(window):
        index = [slice(None)] * t.ndim
        for ax in axes:
            start = delta * dilation
            index[ax] = slice(start, start + stride * (out - 1) + 1, stride)
        view = t[tuple(index)]
        acc = view.clone() if acc is None else acc.add_(view)
    if window != 1:
        acc.mul_(1.0 / window)
    return acc


def _windows(layer: Conv | AvgPool, pixels: tuple[int, ...]):
    """Per spatial axis: (window, stride, dilation, pads, out)."""
    window = layer.kernel_size if isinstance(layer, Conv) else layer.window
    dilation = layer.dilation if isinstance(layer, Conv) else (1,) * len(window)
    rows = []
    for m, size in enumerate(pixels):
        args = (layer.padding, size, window[m], layer.stride[m], dilation[m], m)
        rows.append(
            (window[m], layer.stride[m], dilation[m], padding_sizes(*args), output_size(*args))
        )
    return rows


def _check_rank(layer: Conv | AvgPool, state: PairState) -> None:
    if len(state.pixels) != layer.dim:
        raise ValueError(
            message(
                "x1",
                f"inputs with {layer.dim} spatial axes for {type(layer).__name__} "
                f"{layer.dim}-D (shape (N, C, {'L' if layer.dim == 1 else 'H, W'}))",
                f"a representation with spatial shape {state.pixels}",
                "Pass images as torch lays them out, or put Flatten / GlobalAvgPool "
                "only after the last conv or pooling layer",
            )
        )


def _pair_conv(t, rows, d, full, lead):
    """The conv shift average on a tensor with ``lead`` leading axes."""
    for m, (k, s, dil, pads, out) in enumerate(rows):
        axes = (lead + m, lead + d + m) if full else (lead + m,)
        t = _shift_mean(t, axes, k, s, dil, pads, out)
    return t


def _pair_pool(t, rows, d, full, lead):
    """The pooling average: each side of the pair over its own window."""
    for m, (k, s, dil, pads, out) in enumerate(rows):
        for ax in (lead + m, lead + d + m) if full else (lead + m,):
            t = _shift_mean(t, (ax,), k, s, dil, pads, out)
    return t


def _conv(layer: Conv, state: PairState, ctx: GraphContext) -> PairState:
    _check_rank(layer, state)
    rows = _windows(layer, state.pixels)
    d = layer.dim
    lr_w, lr_b = layer.learning_rates(None if state.fan_in is None else state.fan_in * layer.area)
    # Theta' = lambda_b + A(lambda_w K + C_w Theta): A is linear, one shift average.
    ntk = _pair_conv(
        torch.add(state.ntk * layer.c_w, state.nngp, alpha=lr_w), rows, d, state.full, 2
    ).add_(lr_b)
    nngp = _pair_conv(state.nngp, rows, d, state.full, 2).mul_(layer.c_w).add_(layer.c_b)
    var = lambda v: _pair_conv(v, rows, d, False, 1).mul_(layer.c_w).add_(layer.c_b)  # noqa: E731
    own = lambda v: _pair_conv(v, rows, d, True, 1).mul_(layer.c_w).add_(layer.c_b)  # noqa: E731
    width = layer.channels if layer.channels is not None else ctx.width
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=var(state.var1),
        var2=var(state.var2),
        self1=None if state.self1 is None else own(state.self1),
        self2=None if state.self2 is None else own(state.self2),
        pixels=tuple(r[-1] for r in rows),
        fan_in=width,
    )


def _need_full(layer: Layer, state: PairState) -> None:
    if not state.full:
        raise ValueError(
            message(
                "state",
                f"the full pixel-pair covariance for {type(layer).__name__}",
                "the pixel diagonal",
                "Run image kernels through dltheory.kernels.graph.graph_kernel, which plans it",
            )
        )


def _avg_pool(layer: AvgPool, state: PairState, ctx: GraphContext) -> PairState:
    _check_rank(layer, state)
    _need_full(layer, state)
    rows = _windows(layer, state.pixels)
    d = layer.dim
    self1 = _pair_pool(state.self1, rows, d, True, 1)
    self2 = _pair_pool(state.self2, rows, d, True, 1)
    return state.with_(
        nngp=_pair_pool(state.nngp, rows, d, True, 2),
        ntk=_pair_pool(state.ntk, rows, d, True, 2),
        var1=_own_diagonal(self1),
        var2=_own_diagonal(self2),
        self1=self1,
        self2=self2,
        pixels=tuple(r[-1] for r in rows),
    )


def _global_avg_pool(layer: GlobalAvgPool, state: PairState, ctx: GraphContext) -> PairState:
    if not state.pixels:
        raise ValueError(
            message("spec", "GlobalAvgPool on images", "a feature vector", "Remove the pooling")
        )
    _need_full(layer, state)
    axes = tuple(range(2, 2 + 2 * len(state.pixels)))
    own = tuple(range(1, 1 + 2 * len(state.pixels)))
    return state.with_(
        nngp=state.nngp.mean(axes),
        ntk=state.ntk.mean(axes),
        var1=state.self1.mean(own),
        var2=state.self2.mean(own),
        self1=None,
        self2=None,
        pixels=(),
        full=False,
    )


def _flatten(layer: Flatten, state: PairState, ctx: GraphContext) -> PairState:
    if not state.pixels:
        return state
    state = to_diagonal(state)
    axes = tuple(range(2, 2 + len(state.pixels)))
    own = tuple(range(1, 1 + len(state.pixels)))
    return state.with_(
        nngp=state.nngp.mean(axes),
        ntk=state.ntk.mean(axes),
        var1=state.var1.mean(own),
        var2=state.var2.mean(own),
        pixels=(),
        fan_in=None if state.fan_in is None else state.fan_in * math.prod(state.pixels),
    )


CONV_RULES = {Conv: _conv, AvgPool: _avg_pool, GlobalAvgPool: _global_avg_pool, Flatten: _flatten}


def _own_diagonal(own: torch.Tensor) -> torch.Tensor:
    """(N, *pix, *pix) -> (N, *pix): each input's same-pixel variances."""
    n, half = own.shape[0], (own.ndim - 1) // 2
    pixels = own.shape[1 : 1 + half]
    p = math.prod(pixels)
    return own.reshape(n, p, p).diagonal(dim1=1, dim2=2).reshape(n, *pixels)


def to_diagonal(state: PairState) -> PairState:
    """The same-pixel diagonal K(i, i) of a full pixel-pair state (no-op otherwise)."""
    if not state.full:
        return state
    n1, n2 = state.nngp.shape[:2]
    p = math.prod(state.pixels)

    def diag(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n1, n2, p, p).diagonal(dim1=2, dim2=3).reshape(n1, n2, *state.pixels)

    return state.with_(
        nngp=diag(state.nngp), ntk=diag(state.ntk), self1=None, self2=None, full=False
    )


@dataclass(frozen=True)
class LayoutPlan:
    """What each layer of an image spec reads, planned before any block runs.

    Attributes:
        full_input: per layer, whether it reads the full pixel-pair covariance.
        pixels: per layer, the spatial shape of its input.
        entries: the largest number of kernel entries per input pair at any layer.
        own_entries: the largest number of entries per input (its own covariance).
    """

    full_input: tuple[bool, ...]
    pixels: tuple[tuple[int, ...], ...]
    entries: int
    own_entries: int


def plan_layout(layers: tuple[Layer, ...], pixels: tuple[int, ...]) -> LayoutPlan:
    """Full layout from the input up to the last pooling layer, the diagonal after it.

    Also walks the spatial shapes forward (so rank errors surface before any work).
    """
    shapes, shape = [], pixels
    for layer in layers:
        shapes.append(shape)
        if isinstance(layer, Conv | AvgPool):
            _check_rank(layer, _ShapeOnly(shape))  # type: ignore[arg-type]
            shape = tuple(r[-1] for r in _windows(layer, shape))
        elif isinstance(layer, GlobalAvgPool | Flatten):
            shape = ()
        elif isinstance(layer, Dense) and shape:
            raise ValueError(
                message(
                    "spec",
                    "a network whose Dense layers read feature vectors",
                    f"Dense after a representation of spatial shape {shape}",
                    "Put Flatten or GlobalAvgPool before the Dense layer",
                )
            )
    full_input = [False] * len(layers)
    need = False  # whether the layer after reads the full covariance
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, AvgPool | GlobalAvgPool):
            need = True
        elif isinstance(layer, Flatten):
            need = False
        full_input[i] = need and bool(shapes[i])
    entries = own = 1
    for full, shape in zip(full_input, shapes, strict=True):
        p = math.prod(shape)
        entries = max(entries, p * p if full else p)
        own = max(own, p * p if full else p)
    return LayoutPlan(tuple(full_input), tuple(shapes), entries, own)


@dataclass(frozen=True)
class _ShapeOnly:
    pixels: tuple[int, ...]


def image_state(x1: torch.Tensor, x2: torch.Tensor, full: bool) -> PairState:
    """The input covariance per channel, sum_c x_a(c, i) x_b(c, j) / C, of (N, C, *pix) images."""
    from .graph import PairState

    n1, c = x1.shape[:2]
    n2, pixels = len(x2), tuple(x1.shape[2:])
    p = math.prod(pixels)
    a, b = x1.reshape(n1, c, p), x2.reshape(n2, c, p)
    var1 = a.square().sum(1).div_(c).reshape(n1, *pixels)
    var2 = b.square().sum(1).div_(c).reshape(n2, *pixels)
    if full:
        nngp = torch.einsum("aci,bcj->abij", a, b).div_(c).reshape(n1, n2, *pixels, *pixels)
        self1 = torch.einsum("aci,acj->aij", a, a).div_(c).reshape(n1, *pixels, *pixels)
        self2 = torch.einsum("aci,acj->aij", b, b).div_(c).reshape(n2, *pixels, *pixels)
    else:
        nngp = torch.einsum("aci,bci->abi", a, b).div_(c).reshape(n1, n2, *pixels)
        self1 = self2 = None
    return PairState(
        nngp=nngp,
        ntk=torch.zeros_like(nngp),
        var1=var1,
        var2=var2,
        fan_in=c,
        pixels=pixels,
        full=full,
        self1=self1,
        self2=self2,
    )
