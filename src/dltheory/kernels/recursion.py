"""The infinite-width interpreter of a spec: one rule per layer kind.

State carried between layers (docs/conventions.md), per pair of inputs (a, b):

* after the input or a nonlinearity: ``nngp`` = E[s(z_a) s(z_b)] (x_a.x_b / n_0 at
  the input) and ``ntk`` = E[s'(z_a) s'(z_b)] Theta^(l) (0 at the input);
* after a Dense layer: K^(l+1) = C_b + C_w nngp and
  Theta^(l+1) = lambda_b + lambda_w nngp + C_w ntk (Jacot et al. 2018, Thm 1;
  Roberts, Yaida & Hanin 2022, Eq. 8.12 in NTK parametrisation).

Nonlinearities need the variances k_aa, k_bb of the two inputs at that layer:
``var1`` / ``var2`` (from a diagonal pass), or the state itself on the diagonal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .._checks import as_float_tensor, check_finite_result, check_int, message
from ..spec.layers import Dense, Nonlinearity, Serial

__all__ = ["RULES", "Propagation", "layer_kinds", "propagate"]


@dataclass
class Propagation:
    """Working state of the recursion (mutable, internal)."""

    nngp: torch.Tensor
    ntk: torch.Tensor
    fan_in: int | None


def _dense(layer: Dense, state: Propagation, var1, var2, default_width) -> Propagation:
    lr_w, lr_b = layer.learning_rates(state.fan_in)
    ntk = torch.add(state.ntk * layer.c_w, state.nngp, alpha=lr_w).add_(lr_b)
    nngp = (state.nngp * layer.c_w).add_(layer.c_b)
    width = layer.width if layer.width is not None else default_width
    return Propagation(nngp, ntk, width)


def _nonlinearity(layer: Nonlinearity, state: Propagation, var1, var2, default_width):
    act = layer.activation
    k11 = state.nngp if var1 is None else var1[:, None]
    k22 = state.nngp if var2 is None else var2[None, :]
    ntk = act.ntk_map(k11, state.nngp, k22).mul_(state.ntk)
    nngp = act.nngp_map(k11, state.nngp, k22)
    return Propagation(nngp, ntk, state.fan_in)


RULES: dict[type, Callable[..., Propagation]] = {Dense: _dense, Nonlinearity: _nonlinearity}


def propagate(
    spec: Serial,
    gram: torch.Tensor,
    fan_in: int,
    *,
    var1: Sequence[torch.Tensor] | None = None,
    var2: Sequence[torch.Tensor] | None = None,
    on_dense: Callable[[int, Propagation], None] | None = None,
    on_nonlinearity: Callable[[int, torch.Tensor], None] | None = None,
) -> Propagation:
    """Run the recursion from the input Gram x1.x2 / n_0 through every layer.

    Args:
        spec: the network.
        gram: (N1, N2) block of x_a.x_b / n_0, or (N,) diagonal |x_a|^2 / n_0.
        fan_in: n_0.
        var1, var2: per nonlinearity, the (N1,) / (N2,) preactivation variances
            (``None``: the state is a diagonal and is its own variance).
        on_dense: called with (index, state) after each Dense layer.
        on_nonlinearity: called with (index, preactivation variance) before
            each nonlinearity (used by the diagonal pass).
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    gram = as_float_tensor("gram", gram, allow_inf=True)  # inf: the range check names the layer
    if gram.ndim not in (1, 2):
        raise ValueError(message("gram", "an (N1, N2) block or an (N,) diagonal", gram.shape))
    fan_in = check_int("fan_in", fan_in, minimum=1)
    state = Propagation(gram, torch.zeros_like(gram), fan_in)
    i_dense = i_nonlin = 0
    for layer in spec.layers:
        rule = RULES[type(layer)]
        if isinstance(layer, Nonlinearity):
            if on_nonlinearity is not None:
                on_nonlinearity(i_nonlin, state.nngp)
            v1 = None if var1 is None else var1[i_nonlin]
            v2 = None if var2 is None else var2[i_nonlin]
            state = rule(layer, state, v1, v2, spec.width)
            i_nonlin += 1
        else:
            state = rule(layer, state, None, None, spec.width)
            if on_dense is not None:
                on_dense(i_dense, state)
            i_dense += 1
    check_finite_result("gram", (state.nngp, state.ntk), "The kernel leaves float64's range")
    return state


def layer_kinds() -> tuple[type, ...]:
    """Layer kinds the kernel interpreters handle: the graph interpreter's table
    (``dltheory.kernels.graph.GRAPH_RULES``; this module's ``RULES`` is its MLP-chain
    fast path). A test checks it covers ``dltheory.spec.LAYER_KINDS``."""
    from .graph import GRAPH_RULES

    return tuple(GRAPH_RULES)
