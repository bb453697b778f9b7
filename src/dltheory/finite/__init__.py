"""Finite networks from a spec, and measurements on them.

``finite_width_corrections`` (the 1/n prediction these measurements are
compared with) is re-exported here for convenience; it lives in
:mod:`dltheory.kernels` and is loaded on first use, so this package still does
not import the kernels at import time.
"""

from ..stats import Estimate
from .empirical import empirical_ntk, preactivations, sample_outputs
from .ensemble import Ensemble, EnsembleBatch, ensemble
from .modules import MODULE_RULES, ActivationModule, FiniteDense, build_module
from .moments import PreactivationMoments, layer_samples, preactivation_moments, second_moment
from .path_counting import (
    ReluJacobianMoments,
    relu_jacobian_moments,
    relu_ntk_mean,
    relu_ntk_second_moment,
)
from .relu_jacobian import ReluJacobianSample, sample_relu_jacobians

__all__ = [
    "MODULE_RULES",
    "ActivationModule",
    "Ensemble",
    "EnsembleBatch",
    "Estimate",
    "FiniteDense",
    "PreactivationMoments",
    "ReluJacobianMoments",
    "ReluJacobianSample",
    "build_module",
    "empirical_ntk",
    "ensemble",
    "finite_width_corrections",
    "layer_samples",
    "preactivation_moments",
    "preactivations",
    "relu_jacobian_moments",
    "relu_ntk_mean",
    "relu_ntk_second_moment",
    "sample_outputs",
    "sample_relu_jacobians",
    "second_moment",
]


def __getattr__(name: str):
    if name == "finite_width_corrections":  # a prediction: lives in dltheory.kernels
        from ..kernels import finite_width_corrections

        return finite_width_corrections
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
