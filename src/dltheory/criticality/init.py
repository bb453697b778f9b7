"""Critical initialisation of an existing ``torch.nn.Module``, in place.

Every ``nn.Linear`` (and ``nn.Conv1d/2d/3d``) gets W ~ N(0, C_w / fan_in) and
b ~ N(0, C_b) with the critical (C_b, C_w) of the model's activation
(Roberts, Yaida & Hanin 2022, ch. 5; :func:`~dltheory.criticality.critical_point`).
The readout uses the same C_w, as in the kernel convention of
:func:`dltheory.MLP`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from .._checks import check_choice, check_int, message
from ..activations import Activation
from ..activations import activation as lookup_activation
from ..spec.from_module import SUPPORTED, is_pass_through, module_activation
from .critical_point import critical_point

__all__ = ["critical_init_"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _detect(model: nn.Module) -> Activation:
    """The one activation of ``model``, read through the shared module mapping.

    Unknown activation modules (torch's, or parameter-free modules of the
    user's own) are refused by name; so are models with two kinds of activation
    (their layers have different critical points and no common fixed point).
    A plain ``nn.Sequential`` without any activation is a deep linear network.
    """
    found: dict[str, Activation] = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or is_pass_through(module):
            continue  # containers, and no-ops such as nn.Identity
        try:
            act = module_activation(module)
        except ValueError as err:
            raise ValueError(
                message("model", "made of supported activation modules",
                        f"{name}: {type(module).__name__}",
                        f"Supported: {SUPPORTED}; pass activation=... explicitly to override")
            ) from err  # fmt: skip
        if act is not None:
            found[repr(act)] = act
        elif _custom_nonlinearity(module):
            raise ValueError(
                message(
                    "model",
                    "made of modules whose activation is known",
                    f"{name}: {type(module).__name__}",
                    "A parameter-free module of your own may be a nonlinearity; pass "
                    "activation=... explicitly",
                )
            )
    if not found and _plain_sequential(model):
        return lookup_activation("identity")
    if not found:  # activations called as functions (torch.relu(h)): read the traced graph
        found = _traced_activations(model)
    if len(found) != 1:
        got = sorted(found) if found else "no activation modules"
        raise ValueError(
            message(
                "model",
                "a model with a single kind of activation module (ReLU, Tanh, GELU, SiLU, ...)",
                got,
                "Layers with different activations have different critical points. Pass "
                "activation=... explicitly, or initialise the parts separately",
            )
        )
    return next(iter(found.values()))


def _traced_activations(model: nn.Module) -> dict[str, Activation]:
    from ..spec.trace import lift

    try:
        spec = lift(model, None, None, "standard")
    except (ValueError, TypeError):
        return {}
    found: dict[str, Activation] = {}

    def visit(layers) -> None:
        for layer in layers:
            if hasattr(layer, "activation"):
                found[repr(layer.activation)] = layer.activation
            for arm in ("branch", "skip"):
                visit(getattr(layer, arm, ()))

    visit(spec.layers)
    return found


def _custom_nonlinearity(module: nn.Module) -> bool:
    """A leaf module without parameters from outside torch (e.g. a user's Square)."""
    from_torch = type(module).__module__.startswith("torch.")
    return not from_torch and next(module.parameters(), None) is None


def _plain_sequential(model: nn.Module) -> bool:
    """An nn.Sequential (nested) of Linear and pass-through modules only: a linear network."""
    if type(model) is not nn.Sequential:
        return False
    for module in model.modules():
        if type(module) is nn.Sequential or is_pass_through(module):
            continue
        if not isinstance(module, nn.Linear):
            return False
    return True


def _fan_in(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    return module.in_channels // module.groups * math.prod(module.kernel_size)


def critical_init_(
    model: nn.Module,
    activation: str | Activation | None = None,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    include_conv: bool = True,
    residual: Literal["stable", "zero", "none"] = "stable",
) -> nn.Module:
    """Re-initialise ``model`` in place at the critical (C_b, C_w) of its activation.

    W ~ N(0, C_w / fan_in), b ~ N(0, C_b) for every ``nn.Linear`` (and
    ``nn.Conv1d/2d/3d`` with fan_in = in_channels / groups * prod(kernel_size)
    when ``include_conv``), where (C_b, C_w) solve chi_parallel = chi_perp = 1
    at a fixed point K* (Roberts, Yaida & Hanin 2022, Eqs. (5.7), (5.50),
    (5.51)). Scale-invariant activations get C_b = 0 and C_w = 1 / E[s'^2]
    (He init for ReLU); the K* = 0 class gets C_b = 0, C_w = 1 / s'(0)^2. The
    last Linear (readout) uses the same C_w.

    Args:
        model: any ``torch.nn.Module``; its parameters are overwritten under
            ``torch.no_grad()``.
        activation: a name or :class:`~dltheory.activations.Activation`; None
            detects it from the model's activation modules through
            :func:`dltheory.spec.module_activation` (one kind only; unknown
            activation modules are refused by name; ``nn.Identity`` is skipped;
            a plain ``nn.Sequential`` of Linear layers is a linear network).
        generator: the randomness (a ``torch.Generator`` on the parameters' device).
        seed: or a seed for a fresh CPU generator (at most one of the two;
            neither: torch's global generator).
        include_conv: also re-initialise convolutions.
        residual: the policy for models with residual sums h + alpha F(h), found by
            tracing (:func:`dltheory.spec_from_module`; a model it cannot lift gets the
            plain critical init). ``"stable"`` (Hayou et al. 2021) scales each branch's
            readout (its last Linear) so that alpha^2 chi_F = 1 / L for L blocks, chi_F
            the branch's susceptibility at criticality: every block has
            chi_perp = 1 + 1/L and the Jacobian norm through the net is
            (1 + 1/L)^L -> e. ``"zero"`` (SkipInit, De & Smith 2020; Fixup, Zhang et al.
            2019) zeroes the branch readouts: every block is the identity at init.
            ``"none"``: the plain critical init of every layer (a ReLU block
            h + W relu(h) then has chi = 2: the signal grows as 2^L).

    Returns:
        ``model`` itself.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ValueError: the activation cannot be detected, or has no critical point
            (e.g. sigmoid, softplus: the message gives the reason).

    Examples:
        A 64-layer tanh MLP. PyTorch's default init (C_w = 1/3, C_b = 1/768)
        has a stable fixed point with chi_perp ~ 1/3: two inputs become
        indistinguishable. At criticality (C_w = 1, C_b = 0) the variance
        decays only like 1 / (2 l) and the inputs stay apart.

        >>> layers = [m for _ in range(64) for m in (nn.Linear(256, 256), nn.Tanh())]
        >>> net = nn.Sequential(*layers)
        >>> x = torch.randn(2, 256, generator=torch.Generator().manual_seed(0))
        >>> with torch.no_grad():
        ...     z = net[:-1](x)  # z^(64), default init
        >>> float((z[0] - z[1]).square().mean()) < 1e-10
        True
        >>> net = critical_init_(net, seed=0)
        >>> with torch.no_grad():
        ...     z = net[:-1](x)
        >>> 0.003 < float(z.square().mean()) < 0.03  # ~ 1 / (2 * 64)
        True
        >>> float((z[0] - z[1]).square().mean()) > 1e-3
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
    if seed is not None and generator is not None:
        raise ValueError(message("seed", "None when a generator is given", seed, "Pass one"))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(message("generator", "a torch.Generator", type(generator).__name__))
    if not isinstance(include_conv, bool):
        raise TypeError(message("include_conv", "a bool", include_conv))
    act = _detect(model) if activation is None else lookup_activation(activation)
    point = critical_point(act)
    if point.c_w is None or point.c_b is None:
        raise ValueError(
            message("activation", "an activation with a critical point", act.name, point.reason)
        )
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    check_choice("residual", residual, ("stable", "zero", "none"))
    kinds = (nn.Linear, *_CONV) if include_conv else (nn.Linear,)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, kinds):
                continue
            w = module.weight
            std_w = math.sqrt(point.c_w / _fan_in(module))
            w.copy_(_normal(w, generator) * std_w)
            if module.bias is not None:
                b = module.bias
                b.copy_(_normal(b, generator) * math.sqrt(point.c_b))
    if residual != "none":
        _scale_branch_readouts(model, point.c_w, point.c_b, residual)
    return model


def _scale_branch_readouts(model: nn.Module, c_w: float, c_b: float, policy: str) -> None:
    """The "stable" / "zero" residual policies of :func:`critical_init_`."""
    from ..spec.trace import lift
    from .residual import CRITICALITY_RULES, Signal

    try:
        spec, readouts = lift(model, c_w, c_b, "ntk", readouts=True)
    except (ValueError, TypeError):  # not liftable: no residual structure to read
        return
    n_blocks = len(readouts)
    if n_blocks == 0:
        return
    modules = dict(model.named_modules())
    signal = Signal(1.0)  # |x|^2 / n_0 = 1: where chi_F depends on K (not for ReLU)
    with torch.no_grad():
        for layer in spec.layers:
            if type(layer).__name__ == "Residual":
                name = readouts.pop(0)
                readout = modules.get(name) if name is not None else None
                if readout is not None:
                    factor = 0.0
                    if policy == "stable":
                        branch = Signal(signal.k, signal.m)
                        for inner in layer.branch:
                            branch = CRITICALITY_RULES[type(inner)](inner, branch)
                        gain = layer.alpha**2 * branch.chi_perp * n_blocks
                        factor = 1.0 / math.sqrt(gain) if gain > 0 else 0.0
                    readout.weight.mul_(factor)
                    if readout.bias is not None:
                        readout.bias.mul_(factor)
                    layer = dataclasses.replace(layer, alpha=layer.alpha * factor)
            signal = CRITICALITY_RULES[type(layer)](layer, Signal(signal.k, signal.m))


def _normal(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Sample on the generator's device, then move: a CPU seed works for any model.
    device = generator.device if generator is not None else like.device
    z = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)
    return z.to(like.device)
