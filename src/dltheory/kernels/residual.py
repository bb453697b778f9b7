"""Kernel rule of ``Residual`` on ``PairState``: the sum of two independent arms.

h' = gamma S(h) + alpha F(h) with S, F independent Gaussian processes given h
(``dltheory.spec.residual`` checks it on the spec) has

    K' = gamma^2 S(K) + alpha^2 F(K),   Theta' = gamma^2 Theta_S + alpha^2 Theta_F,

the cross terms E[S_a F_b] vanishing because the arm's last weight layer is fresh
and zero-mean (Yang & Schoenholz 2017, Eq. 3; Hayou et al. 2021, Sec. 2; Roberts,
Yaida & Hanin 2022, Eq. (B.5)); the NTK cross terms sum O(1/sqrt(n)) terms of either
sign and vanish too (neural-tangents' ``FanInSum`` of independent branches). The
representation's mean is gamma m_S (the branch has mean 0); it is Gaussian when S is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spec.residual import Residual
    from .graph import GraphContext, PairState

__all__ = ["residual_rule"]


def residual_rule(layer: Residual, state: PairState, ctx: GraphContext) -> PairState:
    """The Residual row of ``GRAPH_RULES`` (see the module docstring)."""
    from .graph import run_layers

    skip = run_layers(layer.skip, state, ctx) if layer.skip else state
    branch = run_layers(layer.branch, state, ctx)
    if branch.pixels != skip.pixels or branch.full != skip.full:
        from .._checks import message

        raise ValueError(
            message(
                "spec",
                "a Residual whose arms end in one layout",
                f"skip pixels {skip.pixels}, branch pixels {branch.pixels}",
                "Make both arms keep (or both pool) the spatial shape",
            )
        )
    g2, a2 = layer.gamma * layer.gamma, layer.alpha * layer.alpha

    def mix(s, f):
        return f * a2 if g2 == 0 else (s * g2).add_(f, alpha=a2)

    mean1 = None if skip.mean1 is None or g2 == 0 else skip.mean1 * layer.gamma
    mean2 = None if skip.mean2 is None or g2 == 0 else skip.mean2 * layer.gamma
    return branch.with_(
        nngp=mix(skip.nngp, branch.nngp),
        ntk=mix(skip.ntk, branch.ntk),
        var1=mix(skip.var1, branch.var1),
        var2=mix(skip.var2, branch.var2),
        # full image layout: each input's own pixel-pair covariance mixes likewise
        # (pooling after the block reads it for the variances)
        self1=None if branch.self1 is None else mix(skip.self1, branch.self1),
        self2=None if branch.self2 is None else mix(skip.self2, branch.self2),
        mean1=mean1,
        mean2=mean2,
        gaussian=skip.gaussian or g2 == 0,
    )
