"""A ReLU network as data: its affine maps and its piecewise-linear activations.

``piecewise_linear_layers(model)`` reads a ``torch.nn.Sequential`` of
``nn.Linear``, ``nn.ReLU`` and ``nn.LeakyReLU`` (``nn.Identity``, ``nn.Flatten``
and nested ``nn.Sequential`` are harmless), or the project's own
``FiniteDense`` / ``ActivationModule`` (relu, leaky_relu, identity), into
float64 tensors once:

    h^(0) = x,   z^(l) = W^(l) h^(l-1) + b^(l),   h^(l) = sigma_{alpha_l}(z^(l)),
    output = W^(L+1) h^(L) + b^(L+1),

with sigma_alpha(z) = z if z > 0 else alpha z (alpha = 0: ReLU), as torch's
LeakyReLU for any real alpha (this is not max(z, alpha z) when alpha > 1).
Consecutive affine maps are composed, and an activation with no affine map
before it gets the identity, so every hidden layer is "affine, then activation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._checks import check_int, check_module, message
from ..finite.modules import ActivationModule, FiniteDense
from ..spec.from_module import is_pass_through

__all__ = ["HiddenLayer", "PiecewiseLinearNet", "piecewise_linear_layers"]

__fuzz_exempt__ = {
    f"PiecewiseLinearNet.{m}:cases": {
        k: "inner loop of the region counters: values pass unchecked (NaN in, NaN out)"
        for k in ("a:nan", "a:inf", "a:x1e30", "a:x1e300")
    }
    for m in ("affine", "readout")
}


def _check_rows(name: str, a: Any, w: torch.Tensor | None, bias: torch.Tensor | None) -> None:
    ref = w if w is not None else bias
    if not isinstance(a, torch.Tensor) or (ref is not None and a.dtype != ref.dtype):
        dtype = "a tensor" if ref is None else f"a {ref.dtype} tensor"
        got = type(a).__name__ if not isinstance(a, torch.Tensor) else f"dtype {a.dtype}"
        raise TypeError(message(name, dtype, got))
    if a.ndim != 2 or (w is not None and a.shape[1] != w.shape[1]):
        cols = "k" if w is None else str(w.shape[1])
        raise ValueError(message(name, f"of shape (m, {cols})", tuple(a.shape)))


@dataclass(frozen=True)
class HiddenLayer:
    """z = weight @ h + bias, then sigma(z) = z if z > 0 else slope * z.

    Attributes:
        weight: (n_out, n_in) float64, or ``None`` for the identity.
        bias: (n_out,) float64, or ``None`` for zero.
        slope: negative slope alpha (0 for ReLU).
    """

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    slope: float


@dataclass(frozen=True)
class PiecewiseLinearNet:
    """Hidden layers and the final affine readout (``None`` entries: identity / zero)."""

    hidden: tuple[HiddenLayer, ...]
    readout_weight: torch.Tensor | None
    readout_bias: torch.Tensor | None

    @property
    def n_neurons(self) -> int | None:
        """Total hidden neurons (``None`` if an identity layer leaves it to the input size)."""
        total = 0
        for layer in self.hidden:
            if layer.weight is None:
                return None
            total += layer.weight.shape[0]
        return total

    def widths(self, n_in: int) -> list[int]:
        """Widths n_1, ..., n_L of the hidden layers for inputs of dimension ``n_in``."""
        out, features = [], check_int("n_in", n_in, minimum=1)
        for layer in self.hidden:
            features = features if layer.weight is None else layer.weight.shape[0]
            out.append(features)
        return out

    def affine(self, layer: HiddenLayer, a: torch.Tensor, b: torch.Tensor | None = None):
        """Apply ``layer``'s affine map to rows: a W^T + bias (and b W^T, no bias).

        ``a``, ``b``: (m, fan_in) tensors of the layer's dtype (checked for type and shape
        only: this is the inner loop of the region counters).
        """
        if not isinstance(layer, HiddenLayer):
            raise TypeError(message("layer", "a HiddenLayer", type(layer).__name__))
        w = layer.weight
        _check_rows("a", a, w, layer.bias)
        if b is not None:
            _check_rows("b", b, w, layer.bias)
        za = a if w is None else a @ w.T
        if layer.bias is not None:
            za = za + layer.bias
        if b is None:
            return za
        return za, (b if w is None else b @ w.T)

    def readout(self, a: torch.Tensor, b: torch.Tensor | None = None):
        """The readout applied to rows (bias added to ``a`` only)."""
        layer = HiddenLayer(self.readout_weight, self.readout_bias, 0.0)
        return self.affine(layer, a, b)

    def check_input_dim(self, n_in: int, name: str) -> None:
        """Raise if points of dimension ``n_in`` cannot enter the first affine map."""
        n_in = check_int("n_in", n_in, minimum=1)
        if not isinstance(name, str):
            raise TypeError(message("name", "a string (the argument to blame)", name))
        weights = [layer.weight for layer in self.hidden] + [self.readout_weight]
        first = next((w for w in weights if w is not None), None)
        if first is not None and first.shape[1] != n_in:
            raise ValueError(
                message(
                    name,
                    f"a point of the model's input dimension {first.shape[1]}",
                    f"dimension {n_in}",
                )
            )


def _linear(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(module, FiniteDense):
        w = module.weight.detach() * module.w_mult
        b = module.bias.detach() * module.b_mult
    else:
        w = module.weight.detach()
        b = None if module.bias is None else module.bias.detach()
    w = w.to(device="cpu", dtype=torch.float64)
    return w, (None if b is None else b.to(device="cpu", dtype=torch.float64))


def _slope(module: nn.Module) -> float | None:
    """The negative slope of a piecewise-linear activation; None for an identity."""
    if isinstance(module, nn.ReLU):
        return 0.0
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    act = module.activation
    if act.name == "relu":
        return 0.0
    if act.name == "leaky_relu":
        return float(act.params["slope"])
    if act.name == "identity":
        return None
    raise ValueError(
        message(
            "model",
            "a ReLU / leaky-ReLU network",
            f"activation {act.name!r}",
            "Linear regions are defined for piecewise-linear activations",
        )
    )


def _flatten(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [m for child in model for m in _flatten(child)]
    return [model]


def _compose(pending, w, b):
    """(w, b) after the pending affine map (w0, b0): x -> w (w0 x + b0) + b."""
    if pending is None:
        return w, b
    w0, b0 = pending
    w_new = w if w0 is None else w @ w0
    b_new = b
    if b0 is not None:
        shift = b0 @ w.T
        b_new = shift if b is None else b + shift
    return w_new, b_new


def piecewise_linear_layers(model: nn.Module) -> PiecewiseLinearNet:
    """Read the affine maps and activation slopes of a ReLU / leaky-ReLU network.

    Args:
        model: an ``nn.Sequential`` (nesting allowed) of ``nn.Linear``, ``nn.ReLU``,
            ``nn.LeakyReLU``, ``nn.Identity``, ``nn.Flatten``, ``FiniteDense`` and
            ``ActivationModule`` (relu, leaky_relu, identity); or one such layer.

    Returns:
        ``PiecewiseLinearNet`` with float64 CPU tensors.

    >>> net = piecewise_linear_layers(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
    >>> len(net.hidden), tuple(net.hidden[0].weight.shape), net.readout_weight.dtype
    (1, (4, 3), torch.float64)
    """
    check_module("model", model, parameters=False)  # a Module, finite weights and buffers
    hidden: list[HiddenLayer] = []
    pending: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
    features: int | None = None  # output features so far (None: the input's, unknown)
    for index, module in enumerate(_flatten(model)):
        if is_pass_through(module):  # the shared mapping: Identity, Flatten, Unflatten
            continue
        if isinstance(module, nn.Linear | FiniteDense):
            w, b = _linear(module)
            if features is not None and w.shape[1] != features:
                raise ValueError(
                    message(
                        "model",
                        "layers that chain (each Linear's in_features = the previous out_features)",
                        f"layer {index} ({type(module).__name__}) taking {w.shape[1]} features "
                        f"after a layer giving {features}",
                    )
                )
            features = w.shape[0]
            pending = _compose(pending, w, b)
        elif isinstance(module, nn.ReLU | nn.LeakyReLU | ActivationModule):
            slope = _slope(module)
            if slope is None:
                continue
            w, b = pending if pending is not None else (None, None)
            hidden.append(HiddenLayer(w, b, slope))
            pending = None
        else:
            raise TypeError(
                message(
                    "model",
                    "a Sequential of Linear, ReLU, LeakyReLU, Identity, Flatten, FiniteDense "
                    "or relu/leaky_relu ActivationModule layers",
                    f"a {type(module).__name__} layer",
                    "Linear regions are defined for piecewise-linear networks",
                )
            )
    w, b = pending if pending is not None else (None, None)
    return PiecewiseLinearNet(tuple(hidden), w, b)
