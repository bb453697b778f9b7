"""The finite ``SelfAttention`` module (a row of ``MODULE_RULES``).

neural-tangents' ``stax.GlobalSelfAttention`` with ``linear_scaling=True``, in torch:
every weight N(0, 1) (NTK parametrisation), scales in the forward pass, query weights
tied to the key weights (see :mod:`dltheory.spec.attention` for the formula).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import message
from ..spec.attention import SelfAttention

__all__ = ["FiniteSelfAttention"]


class FiniteSelfAttention(nn.Module):
    """z = b_std b + sigma_OV / sqrt(C d_v H) [m(sigma_QK x W_K W_K^T x^T / (C d_k)) x W_V] W_O.

    Reads and returns (N, C, T) sequences.
    """

    def __init__(
        self,
        spec: SelfAttention,
        in_channels: int,
        out_channels: int,
        key_width: int,
        value_width: int,
        generator: torch.Generator,
        dtype: torch.dtype,
        device,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels, self.out_channels = in_channels, out_channels
        h = spec.n_heads

        def draw(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype, device=device))

        self.key = draw(h, in_channels, key_width)
        self.value = draw(h, in_channels, value_width)
        self.out = draw(h * value_width, out_channels)
        self.bias = draw(out_channels) if spec.b_std > 0 else None
        self.logit_scale = spec.qk_std / (in_channels * key_width)
        self.out_scale = (
            spec.w_value_std * spec.w_out_std / math.sqrt(in_channels * value_width * h)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                message(
                    "x",
                    f"sequences (N, {self.in_channels}, T) for SelfAttention",
                    f"shape {tuple(x.shape)}",
                )
            )
        seq = x.transpose(1, 2)  # (N, T, C)
        keys = torch.einsum("ntc,hck->nhtk", seq, self.key)
        values = torch.einsum("ntc,hcv->nhtv", seq, self.value)
        logits = keys @ keys.transpose(-1, -2) * self.logit_scale
        mech = self.spec.mechanism
        if mech == "softmax":
            weights = torch.softmax(logits, dim=-1)
        elif mech == "relu":
            weights = torch.relu(logits)
        elif mech == "abs":
            weights = logits.abs()
        else:
            weights = logits
        heads = (weights @ values).permute(0, 2, 1, 3).flatten(2)  # (N, T, H d_v)
        z = heads @ self.out * self.out_scale
        if self.bias is not None:
            z = z + self.spec.b_std * self.bias
        return z.transpose(1, 2)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{self.in_channels}, {self.out_channels}, heads={s.n_heads}, mechanism={s.mechanism!r}"
        )


def self_attention_rule(layer: SelfAttention, features, width: int | None, **kw):
    """MODULE_RULES row: (module, (channels, positions))."""
    channels, pixels = features if isinstance(features, tuple) else (features, None)
    sizes = {}
    for name in ("channels", "key_width", "value_width"):
        sizes[name] = getattr(layer, name) if getattr(layer, name) is not None else width
        if sizes[name] is None:
            raise ValueError(
                message(
                    "width",
                    f"an integer >= 1 for SelfAttention's {name}",
                    None,
                    "Pass spec.sample(width=...)",
                )
            )
    module = FiniteSelfAttention(
        layer,
        channels,
        sizes["channels"],
        sizes["key_width"],
        sizes["value_width"],
        kw["generator"],
        kw["dtype"],
        kw["device"],
    )
    return module, (sizes["channels"], pixels)


ATTENTION_MODULE_RULES = {SelfAttention: self_attention_rule}
