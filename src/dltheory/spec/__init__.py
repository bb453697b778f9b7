"""Network specs: data that the kernel recursion and the module builder interpret."""

from .from_module import is_pass_through, module_activation, spec_from_module
from .layers import PARAMETRIZATIONS, Dense, Layer, Nonlinearity, Parametrization, Serial
from .mlp import MLP

# Every layer kind; each interpreter's table covers exactly these (tests/spec).
LAYER_KINDS: tuple[type[Layer], ...] = (Dense, Nonlinearity)

__all__ = [
    "LAYER_KINDS",
    "MLP",
    "PARAMETRIZATIONS",
    "Dense",
    "Layer",
    "Nonlinearity",
    "Parametrization",
    "Serial",
    "is_pass_through",
    "module_activation",
    "spec_from_module",
]
