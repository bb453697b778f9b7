"""Kernel rule of ``LayerNorm`` on ``PairState`` (features layout).

At infinite width the mean and variance over the features of input a are
m_a = E[h_a] and V_a = K_aa - m_a^2 (the law of large numbers over features), so

    K'_ab = (K_ab - m_a m_b) / sqrt((V_a + eps)(V_b + eps)),
    Theta'_ab = Theta_ab / sqrt((V_a + eps)(V_b + eps)) + lr_gain K'_ab + lr_shift,

the last two terms from the affine pair (g = 1, beta = 0 at initialisation: its
gradients are the normalised features and 1). With m = 0 (a Gaussian, zero-mean
input) and no affine pair this is neural-tangents' ``stax.LayerNorm`` (Novak et
al. 2020), which refuses non-Gaussian inputs; after an activation m_a = E[s(z_a)]
is subtracted (:func:`activation_mean`), as the finite network does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .._checks import message
from ..activations import Activation, quadrature

if TYPE_CHECKING:
    from ..spec.normalization import LayerNorm
    from .graph import GraphContext, PairState

__all__ = ["activation_mean", "layer_norm_rule"]


def activation_mean(act: Activation, k: torch.Tensor) -> torch.Tensor:
    """E[s(z)], z ~ N(0, K), elementwise over the variances K (float64).

    Closed forms for ReLU (sqrt(K / 2 pi)), leaky ReLU ((1 - a) sqrt(K / 2 pi)) and odd
    activations (0); Gauss quadrature with the activation's kinks otherwise.

    >>> from dltheory import activation
    >>> float(activation_mean(activation("relu"), torch.tensor(2 * math.pi, dtype=torch.float64)))
    1.0
    """
    k = torch.as_tensor(k, dtype=torch.float64)
    if act.name == "relu":
        return (k / (2 * math.pi)).sqrt()
    if act.name == "leaky_relu":
        return (1 - float(act.params.get("slope", 0.01))) * (k / (2 * math.pi)).sqrt()
    if act.name in ("identity", "tanh", "erf", "sin", "sign"):
        return torch.zeros_like(k)
    return quadrature.expectation_1d(act.fn, k, act.kinks)


def layer_norm_rule(layer: LayerNorm, state: PairState, ctx: GraphContext) -> PairState:
    """The LayerNorm row of ``GRAPH_RULES`` (see the module docstring)."""
    if state.pixels:
        raise ValueError(
            message(
                "spec",
                "a network whose LayerNorm reads feature vectors",
                f"LayerNorm after a representation of spatial shape {state.pixels}",
                "Put Flatten or global average pooling before it",
            )
        )
    k11, k22 = state.k11(), state.k22()
    cov = state.nngp
    var1, var2 = state.var1, state.var2
    if state.mean1 is not None:
        cov = cov - state.mean1[:, None] * state.mean2[None, :]
        var1 = var1 - state.mean1.square()
        var2 = var2 - state.mean2.square()
        k11, k22 = var1[:, None], var2[None, :]
    scale1, scale2 = (var1 + layer.eps).rsqrt(), (var2 + layer.eps).rsqrt()
    if not bool(torch.isfinite(scale1).all() and torch.isfinite(scale2).all()):
        raise ValueError(
            message(
                "spec",
                "a network whose LayerNorm reads features of nonzero variance",
                "an input whose features all coincide (variance 0) with eps = 0",
                "Give LayerNorm eps > 0",
            )
        )
    del k11, k22
    outer = scale1[:, None] * scale2[None, :]
    nngp = cov * outer
    ntk = state.ntk * outer
    w_k, const = layer.ntk_shift()
    if w_k:
        ntk.add_(nngp, alpha=w_k)
    if const:
        ntk.add_(const)
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=var1 * scale1.square(),
        var2=var2 * scale2.square(),
        mean1=None,
        mean2=None,
    )
