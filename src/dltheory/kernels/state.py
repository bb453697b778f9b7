"""``KernelState``: the infinite-width kernels of a network on two sets of inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KernelState"]


@dataclass(frozen=True)
class KernelState:
    """NNGP and NTK of one layer's preactivations (per output unit).

    Attributes:
        nngp: (N1, N2) K_ab = E[z_a z_b] at infinite width.
        ntk: (N1, N2) Theta_ab, the frozen neural tangent kernel.
        cov1: (N1,) the NNGP diagonal K_aa of the first inputs.
        cov2: (N2,) the NNGP diagonal of the second inputs (``cov1`` when
            ``x2`` was not given).
        layers: K^(1), ..., K^(L+1): one state per Dense layer, when asked for
            with ``return_layers=True`` (the last equals this state).
    """

    nngp: torch.Tensor
    ntk: torch.Tensor
    cov1: torch.Tensor
    cov2: torch.Tensor
    layers: tuple[KernelState, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.nngp.shape)  # type: ignore[return-value]

    def to(self, *args, **kwargs) -> KernelState:
        """Move / cast every tensor (``torch.Tensor.to`` semantics)."""
        return KernelState(
            self.nngp.to(*args, **kwargs),
            self.ntk.to(*args, **kwargs),
            self.cov1.to(*args, **kwargs),
            self.cov2.to(*args, **kwargs),
            tuple(layer.to(*args, **kwargs) for layer in self.layers),
        )
