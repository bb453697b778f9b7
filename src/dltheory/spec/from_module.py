"""``spec_from_module``: the infinite-width spec of an ordinary PyTorch MLP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from .._checks import message
from ..activations import Activation, activation
from .layers import Dense, Nonlinearity, Parametrization, Serial

__all__ = [
    "PASS_THROUGH_MODULES",
    "SUPPORTED",
    "is_pass_through",
    "module_activation",
    "spec_from_module",
]

# Modules that compute nothing at initialisation: skipped by spec_from_module,
# critical_init_ and the linear-region readers alike (a Linear, Identity, Linear
# chain is two Dense layers, i.e. a linear network).
PASS_THROUGH_MODULES: tuple[type[nn.Module], ...] = (nn.Identity, nn.Flatten, nn.Unflatten)

_SIMPLE = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SiLU: "silu",
    nn.Mish: "mish",
}
SUPPORTED = (
    "ReLU, Tanh, Sigmoid, SiLU, Mish, GELU (approximate 'none' or 'tanh'), LeakyReLU, ELU, "
    "Softplus (threshold >= 20), dltheory ActivationModule"
)


def is_pass_through(module: nn.Module) -> bool:
    """Whether ``module`` is a no-op at init (``nn.Identity``, ``Flatten``, ``Unflatten``).

    >>> is_pass_through(nn.Identity()), is_pass_through(nn.ReLU())
    (True, False)
    """
    return type(module) in PASS_THROUGH_MODULES


def module_activation(module: nn.Module) -> Activation | None:
    """The registry activation that a torch activation module computes.

    The one mapping from torch modules to activations, shared by
    :func:`spec_from_module`, :func:`~dltheory.criticality.critical_init_` and the
    linear-region readers. Pass-through modules (``PASS_THROUGH_MODULES``,
    ``nn.Identity`` among them) are not activations: None.

    Returns:
        the :class:`~dltheory.activations.Activation`, or None for a module that
        is not an activation (Linear, containers, pass-through, dropout, ...).

    Raises:
        ValueError: a ``torch.nn`` activation module the registry does not have
            (e.g. ``nn.Hardtanh``), or with settings it does not model; the
            message names it.

    >>> module_activation(nn.LeakyReLU(0.2)).params
    {'slope': 0.2}
    >>> module_activation(nn.Identity()) is None
    True
    """
    from ..finite.modules import ActivationModule

    if isinstance(module, ActivationModule):
        return module.activation
    kind = type(module)
    if kind in _SIMPLE:
        return activation(_SIMPLE[kind])
    if kind is nn.GELU:
        return activation("gelu", approximate=module.approximate)
    if kind is nn.LeakyReLU:
        return activation("leaky_relu", slope=module.negative_slope)
    if kind is nn.ELU:
        return activation("elu", alpha=module.alpha)
    if kind is nn.Softplus:
        if not module.beta > 0 or not module.threshold >= 20:
            raise ValueError(
                message(
                    "module",
                    "a Softplus with beta > 0 and threshold >= 20",
                    module,
                    "Below threshold 20 torch's linear switch changes the function by more "
                    "than e^-20; raise the threshold",
                )
            )
        return activation("softplus", beta=float(module.beta))
    if kind.__module__ == "torch.nn.modules.activation":
        raise ValueError(
            message(
                "module",
                f"a supported activation module ({SUPPORTED})",
                kind.__name__,
                "Wrap the function with Activation.from_callable in a dltheory "
                "ActivationModule, or pass activation=... explicitly",
            )
        )
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
    from ..finite.conv import FiniteConv
    from ..finite.modules import FiniteDense
    from .conv import conv_layer_from_module

    if not isinstance(model, nn.Sequential):
        raise TypeError(message("model", "a torch.nn.Sequential", type(model).__name__))
    linear = nn.Linear | FiniteDense | nn.Conv1d | nn.Conv2d | FiniteConv
    denses = [m for m in model if isinstance(m, linear)]
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
        if isinstance(module, FiniteConv):
            layers.append(replace(module.spec, channels=module.out_channels))
            i += 1
            continue
        image = any(type(layer).__name__ == "Conv" for layer in layers)
        if image or isinstance(module, nn.Conv1d | nn.Conv2d):  # conv nets: their kinds
            kind = conv_layer_from_module(module, c_ws[i] if i < n else 1.0, 0.0, parametrization)
            if kind is not None:
                if hasattr(kind, "c_b") and module.bias is not None:
                    kind = replace(kind, c_b=c_bs[i])
                layers.append(kind)
                i += hasattr(kind, "c_w")
                continue
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
        elif is_pass_through(module):
            continue
        else:
            try:
                act = module_activation(module)
            except ValueError:  # a torch activation the registry does not model
                act = None
            if act is None:
                raise ValueError(
                    message(
                        "model",
                        "made of Linear layers and supported activations",
                        type(module).__name__,
                        f"Supported: {SUPPORTED}; nn.Identity and Flatten are skipped",
                    )
                )
            if layers and isinstance(layers[-1], Nonlinearity):
                raise ValueError(
                    message(
                        "model",
                        "free of two activations in a row",
                        type(module).__name__,
                        "Compose them into one activation with Activation.from_callable",
                    )
                )
            layers.append(Nonlinearity(act))
    first = denses[0]
    in_dim = getattr(first, "in_features", None) or getattr(first, "in_channels", None)
    return Serial(*layers, in_dim=in_dim)
