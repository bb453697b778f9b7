"""Network specs: data that the kernel recursion and the module builder interpret."""

from .from_module import spec_from_module
from .layers import PARAMETRIZATIONS, Dense, Layer, Nonlinearity, Parametrization, Serial
from .mlp import MLP

__all__ = [
    "MLP",
    "PARAMETRIZATIONS",
    "Dense",
    "Layer",
    "Nonlinearity",
    "Parametrization",
    "Serial",
    "spec_from_module",
]
