"""``spec_from_module``: the infinite-width spec of an ordinary PyTorch MLP."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .._checks import message
from ..activations import Activation, activation
from .layers import Dense, Nonlinearity, Parametrization, Serial

__all__ = ["spec_from_module"]


def _activation_of(module: nn.Module) -> Activation | None:
    """The registry activation equal to a torch activation module, if any."""
    from ..finite.modules import ActivationModule

    if isinstance(module, ActivationModule):
        return module.activation
    simple = {
        nn.ReLU: "relu",
        nn.Tanh: "tanh",
        nn.Sigmoid: "sigmoid",
        nn.SiLU: "silu",
        nn.Identity: "identity",
    }
    for kind, name in simple.items():
        if type(module) is kind:
            return activation(name)
    if type(module) is nn.GELU and module.approximate == "none":
        return activation("gelu")
    if type(module) is nn.LeakyReLU:
        return activation("leaky_relu", slope=module.negative_slope)
    if type(module) is nn.ELU:
        return activation("elu", alpha=module.alpha)
    if type(module) is nn.Softplus and module.beta == 1 and module.threshold >= 20:
        return activation("softplus")
    return None


def spec_from_module(
    model: nn.Module,
    c_w: float | Sequence[float] = 1.0,
    c_b: float | Sequence[float] = 0.0,
    parametrization: Parametrization = "ntk",
) -> Serial:
    """Lift a ``torch.nn.Sequential`` of ``Linear`` layers and activations into a spec.

    Widths and activations are read from the model; (C_w, C_b) are the user's
    (the infinite-width limit describes the model initialised with them), one
    number or one per Linear layer. ``dltheory`` modules sampled from a spec are
    lifted with their own (C_w, C_b).

    Raises:
        ValueError: a module that is neither Linear nor a supported activation.
    """
    from ..finite.modules import FiniteDense

    if not isinstance(model, nn.Sequential):
        raise TypeError(message("model", "a torch.nn.Sequential", type(model).__name__))
    denses = [m for m in model if isinstance(m, nn.Linear | FiniteDense)]
    if not denses:
        raise ValueError(message("model", "a Sequential with at least one Linear layer", model))
    n = len(denses)
    c_ws = list(c_w) if isinstance(c_w, Sequence) else [c_w] * n
    c_bs = list(c_b) if isinstance(c_b, Sequence) else [c_b] * n
    for name, values, given in (("c_w", c_ws, c_w), ("c_b", c_bs, c_b)):
        if len(values) != n:
            raise ValueError(message(name, f"a number or {n} numbers (one per Linear)", given))
    layers: list[Dense | Nonlinearity] = []
    i = 0
    for module in model:
        if isinstance(module, FiniteDense):
            layers.append(
                module.spec.__class__(**{**module.spec.__dict__, "width": module.out_features})
            )
            i += 1
        elif isinstance(module, nn.Linear):
            layers.append(
                Dense(
                    c_ws[i],
                    c_bs[i] if module.bias is not None else 0.0,  # no bias: C_b = 0
                    width=module.out_features,
                    parametrization=parametrization,
                )
            )
            i += 1
        else:
            act = _activation_of(module)
            if act is None:
                raise ValueError(
                    message(
                        "model",
                        "made of Linear layers and supported activations",
                        type(module).__name__,
                        "Supported: ReLU, Tanh, Sigmoid, SiLU, GELU, LeakyReLU, ELU, "
                        "Softplus, Identity",
                    )
                )
            layers.append(Nonlinearity(act))
    first = denses[0]
    return Serial(*layers, in_dim=first.in_features)
