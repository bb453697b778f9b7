"""Infinite-width kernels (NNGP, NTK) of a spec."""

from .blocked import DEFAULT_MEMORY_BUDGET, kernel
from .corrections import FiniteWidthCorrections, finite_width_corrections
from .recursion import RULES, layer_kinds, propagate
from .state import KernelState

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "RULES",
    "FiniteWidthCorrections",
    "KernelState",
    "finite_width_corrections",
    "kernel",
    "layer_kinds",
    "propagate",
]
