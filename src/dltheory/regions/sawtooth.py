"""Telgarsky's sawtooth: a deep ReLU network with exactly 2^L pieces on [0, 1].

The tent map f(x) = relu(2 relu(x) - 4 relu(x - 1/2)) equals 2x on [0, 1/2] and
2 - 2x on [1/2, 1], so f_L = f o ... o f (L times) is a sawtooth with 2^(L-1)
teeth and exactly 2^L linear pieces on [0, 1] (Telgarsky 2016, "Benefits of
depth in neural networks"). As a network: 2L Linear layers, 2L hidden ReLU
layers of widths 2, 1, 2, 1, ..., 3L ReLU neurons. On [0, 1] every width-1 ReLU
is redundant (its input, the tent, is >= 0); some notes count 3L - 1 neurons by
dropping the last one, and write "L spikes and so 2 x 2^L regions": f_L has
2^(L-1) spikes and 2^L pieces.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import Plain, as_float_tensor, check_int, message

__all__ = ["sawtooth", "sawtooth_reference"]

MAX_DEPTH = 52  # 2^L pieces of width 2^-L: beyond 52 they fall below float64 resolution


def sawtooth(L: int, *, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """Telgarsky's sawtooth f_L: 2L Linear layers, 3L ReLUs, 2^L pieces on [0, 1].

    Args:
        L: number of tent maps composed, 1 <= L <= 52.
        dtype: parameter dtype (float64 keeps the dyadic breakpoints k / 2^L exact).

    Returns:
        ``nn.Sequential([Linear(1, 2), ReLU, Linear(2, 1), ReLU] * L)``.

    >>> f = sawtooth(2)
    >>> f(torch.tensor([[0.125], [0.25], [0.5]], dtype=torch.float64)).flatten().tolist()
    [0.5, 1.0, 0.0]
    """
    L = check_int("L", L, minimum=1)
    if L > MAX_DEPTH:
        raise ValueError(
            message(
                "L",
                f"an integer <= {MAX_DEPTH}",
                L,
                "Pieces of width 2^-L are below float64 resolution beyond that",
            )
        )
    layers: list[nn.Module] = []
    for _ in range(L):
        inner, outer = nn.Linear(1, 2, dtype=dtype), nn.Linear(2, 1, dtype=dtype)
        with torch.no_grad():
            inner.weight.copy_(torch.tensor([[1.0], [1.0]]))
            inner.bias.copy_(torch.tensor([0.0, -0.5]))
            outer.weight.copy_(torch.tensor([[2.0, -4.0]]))
            outer.bias.zero_()
        layers += [inner, nn.ReLU(), outer, nn.ReLU()]
    return nn.Sequential(*layers)


def sawtooth_reference(L: int, x) -> torch.Tensor:
    """f_L(x) from the tent map's closed form min(2x, 2 - 2x) on [0, 1] (independent of the net).

    ``x`` is a finite real array (tensor, NumPy array, list or number); float
    tensors keep their dtype, other inputs become float64.

    >>> sawtooth_reference(3, torch.tensor([0.0625, 0.125])).tolist()
    [0.5, 1.0]
    """
    L = check_int("L", L, minimum=1)
    x = as_float_tensor("x", x)
    # Floats are dyadic rationals with at most 1126 bits after the point: after 1200 tent
    # steps every entry of [0, 1] is 0 (a fixed point), so more steps change nothing there.
    for _ in range(min(L, 1200)):
        x = torch.minimum(2 * x, 2 - 2 * x)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            message(
                "x",
                "in [0, 1] for this many tent steps (outside, the sawtooth doubles each step)",
                Plain(f"entries from {float(x.min()):g} after L = {L} steps"),
                "Use a smaller L",
            )
        )
    return x
