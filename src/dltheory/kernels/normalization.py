"""Kernel rule of ``LayerNorm`` on ``PairState`` (feature vectors and images).

At infinite width the mean and variance over the features of input a are
m_a = E[h_a] and V_a = K_aa - m_a^2 (the law of large numbers over features), so

    K'_ab = (K_ab - m_a m_b) / sqrt((V_a + eps)(V_b + eps)),
    Theta'_ab = Theta_ab / sqrt((V_a + eps)(V_b + eps)) + lr_gain K'_ab + lr_shift,

the last two terms from the affine pair (g = 1, beta = 0 at initialisation: its
gradients are the normalised features and 1). With m = 0 (a Gaussian, zero-mean
input) and no affine pair this is neural-tangents' ``stax.LayerNorm`` (Novak et
al. 2020), which refuses non-Gaussian inputs; after an activation m_a = E[s(z_a)]
is subtracted (:func:`activation_mean`), as the finite network does. On images the
same map runs per pixel (``over="channels"``) or with the image's mean and variance
over pixels (``over="all"``), see :mod:`dltheory.spec.normalization`.
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


def _outer(state: PairState, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a_a(i) b_b(j) of per-input, per-pixel values (N, *pixels), in the state's layout."""
    n1, n2, pix = len(a), len(b), state.pixels
    if state.full:
        ones = (1,) * len(pix)
        return a.reshape(n1, 1, *pix, *ones) * b.reshape(1, n2, *ones, *pix)
    return a[:, None] * b[None, :]


def _own_outer(state: PairState, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a(i) b(j) of one input's values (N, *pixels), shaped like its own covariance."""
    left, right = state.own_pairs(a)[0], state.own_pairs(b)[1]
    return left * right


def _means(state: PairState, layer: LayerNorm):
    """Per side: (m, c), the feature mean m(i) and the mean c(i) LayerNorm subtracts."""
    out = []
    for var, mean in ((state.var1, state.mean1), (state.var2, state.mean2)):
        if mean is None:
            m = torch.zeros_like(var)
        elif mean.shape != var.shape:
            raise ValueError(
                message(
                    "spec",
                    "a network whose LayerNorm reads a Dense / Conv output or an activation of one",
                    "LayerNorm after pooling an activation's output",
                    "Put a Dense or Conv layer between the pooling and the LayerNorm",
                )
            )
        else:
            m = mean
        c = m
        if layer.over == "all" and state.pixels:
            axes = tuple(range(1, m.ndim))
            c = m.mean(axes, keepdim=True).expand_as(m)
        out.append((m, c))
    return out


def layer_norm_rule(layer: LayerNorm, state: PairState, ctx: GraphContext) -> PairState:
    """The LayerNorm row of ``GRAPH_RULES`` (see :mod:`dltheory.spec.normalization`).

    With c the subtracted mean (each pixel's own for ``over="channels"``, the image's
    for ``"all"``), the centred covariance is K - m_a c_b - c_a m_b + c_a c_b, the
    centred variance V_a(i) = K_aa(i, i) - 2 m_a(i) c_a(i) + c_a(i)^2, and the divisor
    sqrt(V + eps) per pixel (``"channels"``) or sqrt(mean_i V(i) + eps) per image
    (``"all"``).
    """
    (m1, c1), (m2, c2) = _means(state, layer)
    centred = state.mean1 is not None or state.mean2 is not None
    cov = state.nngp
    if centred:
        cov = cov - _outer(state, m1, c2) - _outer(state, c1, m2) + _outer(state, c1, c2)
    v1 = state.var1 - 2 * m1 * c1 + c1.square()
    v2 = state.var2 - 2 * m2 * c2 + c2.square()
    d1, d2 = v1, v2
    if layer.over == "all" and state.pixels:
        d1 = v1.mean(tuple(range(1, v1.ndim)), keepdim=True).expand_as(v1)
        d2 = v2.mean(tuple(range(1, v2.ndim)), keepdim=True).expand_as(v2)
    scale1, scale2 = (d1 + layer.eps).rsqrt(), (d2 + layer.eps).rsqrt()
    if not bool(torch.isfinite(scale1).all() and torch.isfinite(scale2).all()):
        raise ValueError(
            message(
                "spec",
                "a network whose LayerNorm reads features of nonzero variance",
                "an input whose features all coincide (variance 0) with eps = 0",
                "Give LayerNorm eps > 0",
            )
        )
    outer = _outer(state, scale1, scale2)
    nngp = cov * outer
    ntk = state.ntk * outer
    w_k, const = layer.ntk_shift()
    if w_k or const:
        shift = torch.add(nngp * w_k, const) if w_k else torch.full_like(nngp, const)
        if layer.per_pixel_affine and state.full:  # one gain per pixel: equal pixels only
            p = math.prod(state.pixels)
            eye = torch.eye(p, dtype=nngp.dtype, device=nngp.device)
            shift = shift * eye.reshape(*state.pixels, *state.pixels)
        ntk.add_(shift)
    own = {}
    if state.self1 is not None:
        for name, self_, m, c, s in (
            ("self1", state.self1, m1, c1, scale1),
            ("self2", state.self2, m2, c2, scale2),
        ):
            if centred:
                self_ = (
                    self_
                    - _own_outer(state, m, c)
                    - _own_outer(state, c, m)
                    + _own_outer(state, c, c)
                )
            own[name] = self_ * _own_outer(state, s, s)
    keep_mean = layer.over == "all" and state.pixels and centred
    return state.with_(
        nngp=nngp,
        ntk=ntk,
        var1=v1 * scale1.square(),
        var2=v2 * scale2.square(),
        mean1=(m1 - c1) * scale1 if keep_mean else None,
        mean2=(m2 - c2) * scale2 if keep_mean else None,
        **own,
    )
