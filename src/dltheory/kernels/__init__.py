"""Infinite-width kernels (NNGP, NTK) of a spec."""

from .blocked import DEFAULT_MEMORY_BUDGET, kernel
from .recursion import RULES, layer_kinds, propagate
from .state import KernelState

__all__ = ["DEFAULT_MEMORY_BUDGET", "RULES", "KernelState", "kernel", "layer_kinds", "propagate"]
