"""Finite networks from a spec, and measurements on them."""

from .empirical import empirical_ntk, preactivations, sample_outputs
from .estimate import Estimate
from .modules import MODULE_RULES, ActivationModule, FiniteDense, build_module

__all__ = [
    "MODULE_RULES",
    "ActivationModule",
    "Estimate",
    "FiniteDense",
    "build_module",
    "empirical_ntk",
    "preactivations",
    "sample_outputs",
]
