"""Activations without closed-form Gaussian maps: quadrature (Mehler series).

Each declares its torch function and explicit derivatives; the Gaussian maps
come from :mod:`dltheory.activations.quadrature` (accurate to ~1e-12 absolute).
"""

from __future__ import annotations

import math

import torch

from .._checks import check_choice, check_real, message
from .base import Activation

__all__ = ["elu", "gelu", "mish", "sigmoid", "silu", "softplus", "tanh"]

_INV_ROOT_2PI = 1 / math.sqrt(2 * math.pi)


def _phi(x: torch.Tensor) -> torch.Tensor:
    return _INV_ROOT_2PI * torch.exp(-0.5 * x * x)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def tanh() -> Activation:
    """tanh z, with tanh' = 1 - tanh^2 and tanh'' = -2 tanh (1 - tanh^2)."""
    return Activation(
        name="tanh",
        fn=torch.tanh,
        d1=lambda x: 1 - torch.tanh(x) ** 2,
        d2=lambda x: -2 * torch.tanh(x) * (1 - torch.tanh(x) ** 2),
    )


def sigmoid() -> Activation:
    """Logistic sigmoid 1 / (1 + e^-z)."""

    def d1(x):
        s = torch.sigmoid(x)
        return s * (1 - s)

    def d2(x):
        s = torch.sigmoid(x)
        return s * (1 - s) * (1 - 2 * s)

    return Activation(name="sigmoid", fn=torch.sigmoid, d1=d1, d2=d2)


def softplus(beta: float = 1.0) -> Activation:
    """Softplus log(1 + e^(beta z)) / beta, with softplus' = sigmoid(beta z).

    The smooth function itself: ``torch.nn.Softplus`` switches to z above
    ``threshold / beta`` (default 20), a change below e^-threshold / beta.
    """
    beta = check_real("beta", beta)
    if beta <= 0:
        raise ValueError(message("beta", "> 0", beta))

    def fn(x):
        return torch.relu(x) + torch.log1p(torch.exp(-(beta * x).abs())) / beta

    def d2(x):
        s = torch.sigmoid(beta * x)
        return beta * s * (1 - s)

    return Activation(
        name="softplus",
        fn=fn,
        d1=lambda x: torch.sigmoid(beta * x),
        d2=d2,
        params={} if beta == 1.0 else {"beta": beta},
    )


def gelu(approximate: str = "none") -> Activation:
    """GELU z Phi(z) (``torch.nn.GELU()``), or its tanh approximation
    z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2 (``approximate="tanh"``)."""
    approximate = check_choice("approximate", approximate, ("none", "tanh"))
    if approximate == "tanh":
        return Activation(
            name="gelu",
            fn=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
            params={"approximate": "tanh"},
        )
    return Activation(
        name="gelu",
        fn=lambda x: x * _cdf(x),
        d1=lambda x: _cdf(x) + x * _phi(x),
        d2=lambda x: (2 - x * x) * _phi(x),
    )


def mish() -> Activation:
    """Mish z tanh(softplus(z)) (Misra 2019), as ``torch.nn.Mish``; derivatives by autograd."""
    return Activation(name="mish", fn=torch.nn.functional.mish)


def silu() -> Activation:
    """SiLU / swish z sigmoid(z)."""

    def d1(x):
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))

    def d2(x):
        s = torch.sigmoid(x)
        return s * (1 - s) * (2 + x * (1 - 2 * s))

    return Activation(name="silu", fn=torch.nn.functional.silu, d1=d1, d2=d2)


def elu(alpha: float = 1.0) -> Activation:
    """ELU: z for z > 0, alpha (e^z - 1) otherwise (kink at 0 unless alpha = 1)."""
    alpha = check_real("alpha", alpha)

    def d1(x):
        return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(x.clamp_max(0)))

    def d2(x):
        return torch.where(x > 0, torch.zeros_like(x), alpha * torch.exp(x.clamp_max(0)))

    return Activation(
        name="elu",
        fn=lambda x: torch.nn.functional.elu(x, alpha),
        d1=d1,
        d2=d2,
        kinks=(0.0,),
        params={"alpha": alpha},
    )
