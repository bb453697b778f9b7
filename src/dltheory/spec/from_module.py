"""``spec_from_module``: the infinite-width spec of an ordinary PyTorch model.

The model's forward is traced by ``torch.fx`` (:mod:`dltheory.spec.trace` maps the
graph); this module holds the one mapping from torch activation modules to the
registry's activations, shared with ``critical_init_`` and the region readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .._checks import message
from ..activations import Activation, activation
from .layers import Parametrization, Serial

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
    c_w: float | Sequence[float] | None = None,
    c_b: float | Sequence[float] | None = None,
    parametrization: Parametrization = "standard",
) -> Serial:
    """Lift any ``nn.Module`` whose forward ``torch.fx`` can trace into a spec.

    The traced graph maps node by node: ``Linear`` -> ``Dense`` (width and fan-in read
    from it, shapes checked to chain), activation modules and functions ->
    ``Nonlinearity``, ``LayerNorm`` -> ``LayerNorm``, ``Dropout`` -> the identity (its
    value at initialisation in eval mode; its mean in train mode), ``Identity`` /
    ``Flatten`` of feature vectors -> nothing, ``h + F(h)`` (scalar multiples of either
    arm, ``-``, nested sums, for-loops of blocks, nested modules) -> ``Residual``, and
    the convolution and pooling layers of :mod:`dltheory.spec.conv` where present.
    What has no kind is refused in one line naming the graph node and its module.

    By default the spec is the model as PyTorch initialises and trains it: standard
    parametrisation (weights trained directly), and ``nn.Linear``'s own init,
    W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with a = sqrt(5)), i.e.
    C_w = 1/3, and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. C_b = 1/(3 fan_in)
    with this layer's own fan-in (the bias variance is read at the model's widths:
    it vanishes for hidden layers as the width grows and stays for the input layer).
    Only second moments enter the infinite-width limit, so a uniform init has the
    kernels of the Gaussian one with its variance. ``spec.kernel(x).ntk`` is then the
    width -> infinity limit of the model's own ``empirical_ntk`` at its widths. Layers
    sampled by dltheory (``FiniteDense``) keep their own spec.

    Args:
        model: a ``torch.nn.Module`` with one tensor input.
        c_w, c_b: override the variances: one number, or one per Linear layer (graph
            order); None: each layer's PyTorch default (above).
        parametrization: of every lifted Linear (``"standard"``: PyTorch training;
            ``"ntk"``: the kernel regime's Theta^(l+1) = K^(l+1) + C_w E[s's'] Theta^(l)).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: an untraceable forward, a node without a layer kind, shapes that do
            not chain, or a sum whose branch is not independent of its skip (each
            message names the node and its module).

    >>> import torch
    >>> class Block(nn.Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.fc = nn.Linear(n, n)
    ...     def forward(self, h):
    ...         return h + 0.5 * self.fc(torch.relu(h))
    >>> model = nn.Sequential(nn.Linear(3, 16), Block(16), Block(16), nn.ReLU(), nn.Linear(16, 1))
    >>> spec = spec_from_module(model)
    >>> [type(layer).__name__ for layer in spec.layers]
    ['Dense', 'Residual', 'Residual', 'Nonlinearity', 'Dense']
    >>> spec.layers[1].alpha
    0.5
    """
    from .trace import lift

    if not isinstance(model, nn.Module):
        raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
    return lift(model, c_w, c_b, parametrization)
