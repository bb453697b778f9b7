"""Size checks shared by the measured profiles: refuse, before building anything, networks
whose weights would not fit the memory budget and variances the quadrature cannot resolve."""

from __future__ import annotations

import torch

from .._checks import Plain, check_bytes, message
from ..activations import Activation

__all__ = ["MAX_DEPTH", "check_kernel_scale", "check_network_size"]

MAX_DEPTH = 100_000


def check_network_size(depth: int, width: int) -> None:
    """One sampled network (depth hidden layers of ``width``) must fit the memory budget."""
    if depth > MAX_DEPTH:
        raise ValueError(message("depth", f"<= {MAX_DEPTH} layers", depth))
    check_bytes("width, depth", 8.0 * (depth + 1) * width * (width + 2))


def check_kernel_scale(s: Activation, k: torch.Tensor, name: str = "c_w, c_b, x") -> None:
    """Variances reaching a quadrature activation's Gaussian maps must stay <= 1e16 (the
    nested Gauss rules resolve sigma(sqrt(K) z) up to there); closed forms take any."""
    if s.has_closed_form:
        return
    top = float(k.abs().max())
    if top > 1e16:
        raise ValueError(
            message(
                name,
                f"such that the first-layer variances stay <= 1e16 for {s.name!r}",
                Plain(f"a variance of {top:.3g}"),
                "Rescale the inputs or the variances",
            )
        )
