"""Kernel rule of ``SelfAttention`` (tied query / key weights, 1 / d_k scaling).

With the attention weights of each input a (T x T, deterministic at infinite width;
Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention", arXiv 2006.10540,
Sec. 3.2 and App. C; neural-tangents' ``stax.GlobalSelfAttention`` kernel):

    G_a = m(sigma_QK K_aa),          K_aa(i, j) the input's own position covariance,

m the softmax over j (or identity / relu / abs entrywise), the layer maps the
position-pair kernels of inputs a, b as

    K'_ab     = sigma_OV^2 G_a K_ab G_b^T + b_std^2,
    Theta'_ab = sigma_OV^2 G_a Theta_ab G_b^T + 2 sigma_OV^2 G_a K_ab G_b^T + b_std^2

(NTK parametrisation: the value and output weights each add sigma_OV^2 G K G^T, the
bias b_std^2; the key weights' contribution vanishes as d_k -> infinity). The rule
reads the full position-pair covariance (the graph engine keeps it up to the last
attention or pooling layer) and returns it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from .._checks import message
from ..spec.attention import SelfAttention
from .conv import LayoutPlan

if TYPE_CHECKING:
    from .graph import GraphContext, PairState

__all__ = ["ATTENTION_RULES", "attention_weights", "plan_with_attention"]


def attention_weights(layer: SelfAttention, own: torch.Tensor) -> torch.Tensor:
    """G = m(sigma_QK K_aa) of (N, T, T) own covariances (softmax over the last axis)."""
    logits = own * layer.qk_std
    if layer.mechanism == "softmax":
        return torch.softmax(logits, dim=-1)
    if layer.mechanism == "relu":
        return logits.clamp_min(0.0)
    if layer.mechanism == "abs":
        return logits.abs()
    return logits


def _check_sequence(state: PairState) -> None:
    if len(state.pixels) != 1:
        raise ValueError(
            message(
                "x1",
                "sequences (N, C, T) for SelfAttention (one position axis, Conv1d's layout)",
                f"a representation with spatial shape {state.pixels}",
                "Pass sequences as (N, C, T), or flat rows with input_shape=(C, T)",
            )
        )
    if not state.full:
        raise ValueError(
            message(
                "state",
                "the full position-pair covariance for SelfAttention",
                "the position diagonal",
                "Run it through dltheory.kernels.graph.graph_kernel, which plans it",
            )
        )


def _self_attention(layer: SelfAttention, state: PairState, ctx: GraphContext) -> PairState:
    _check_sequence(state)
    g1 = attention_weights(layer, state.self1)
    g2 = attention_weights(layer, state.self2)
    c, b2 = layer.ov_var, layer.b_std**2

    def pair(t: torch.Tensor) -> torch.Tensor:
        # G_a t_ab G_b^T as two batched matmuls (a three-operand einsum is slower)
        return torch.matmul(torch.matmul(g1[:, None], t), g2.transpose(1, 2)[None])

    def own(g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (g @ t @ g.transpose(1, 2)).mul_(c).add_(b2)

    weighed = pair(state.nngp).mul_(c)
    ntk = pair(state.ntk).mul_(c).add_(weighed, alpha=2.0).add_(b2)
    self1, self2 = own(g1, state.self1), own(g2, state.self2)
    width = layer.channels if layer.channels is not None else ctx.width
    return state.with_(
        nngp=weighed.add_(b2),
        ntk=ntk,
        self1=self1,
        self2=self2,
        var1=self1.diagonal(dim1=1, dim2=2).clone(),
        var2=self2.diagonal(dim1=1, dim2=2).clone(),
        fan_in=width,
    )


ATTENTION_RULES = {SelfAttention: _self_attention}


def _reads_pairs(layer) -> bool:
    """Whether the layer, or a layer in one of its arms (``Residual``), is attention."""
    if getattr(layer, "reads_pixel_pairs", False):
        return True
    arms = (getattr(layer, name, ()) for name in ("branch", "skip"))
    return any(_reads_pairs(inner) for arm in arms for inner in (arm or ()))


def plan_with_attention(layers, plan: LayoutPlan) -> LayoutPlan:
    """The layout plan with every layer up to the last attention layer on position pairs."""
    last = max((i for i, layer in enumerate(layers) if _reads_pairs(layer)), default=-1)
    if last < 0:
        return plan
    full_input = tuple(
        full or (i <= last and bool(plan.pixels[i])) for i, full in enumerate(plan.full_input)
    )
    entries = max(
        math.prod(shape) ** (2 if full else 1)
        for full, shape in zip(full_input, plan.pixels, strict=True)
    )
    return replace(
        plan, full_input=full_input, entries=max(entries, 1), own_entries=max(entries, 1)
    )
