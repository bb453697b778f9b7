"""Finite networks from a spec, and measurements on them."""

from .empirical import empirical_ntk, preactivations, sample_outputs
from .ensemble import Ensemble, EnsembleBatch, ensemble
from .estimate import Estimate
from .modules import MODULE_RULES, ActivationModule, FiniteDense, build_module
from .moments import PreactivationMoments, preactivation_moments

__all__ = [
    "MODULE_RULES",
    "ActivationModule",
    "Ensemble",
    "EnsembleBatch",
    "Estimate",
    "FiniteDense",
    "PreactivationMoments",
    "build_module",
    "empirical_ntk",
    "ensemble",
    "preactivation_moments",
    "preactivations",
    "sample_outputs",
]
