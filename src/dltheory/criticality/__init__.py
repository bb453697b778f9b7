"""Criticality: susceptibilities, fixed points and critical initialisations.

Names: ``c_w``, ``c_b`` (weight and bias variances), ``k_star`` (fixed point of
the diagonal kernel map), ``chi_parallel`` and ``chi_perp`` (its
susceptibilities), as in Roberts, Yaida & Hanin (2022), ch. 5.

>>> from dltheory.criticality import chi_perp
>>> float(chi_perp("relu", 2.0, 1.0))
1.0
"""

from .analysis import Analysis, analyze, plot_analysis
from .critical_point import CriticalPoint, critical_point, k_star_zero_decay
from .depth_scales import DepthScales, Phase, correlation_map, depth_scales
from .fixed_points import FixedPoint, FixedPoints, fixed_points
from .init import critical_init_
from .measure import (
    CorrelationFit,
    CorrelationScale,
    fit_correlation_scale,
    measured_correlation_scale,
)
from .pair_correlations import (
    CorrelationSamples,
    ProfileComparison,
    compare_correlation_profile,
    correlation_samples,
    pair_inputs,
)
from .phase_diagram import PhaseDiagram, phase_diagram, plot_phase_diagram
from .profiles import DepthProfile, MeasuredDepthProfile, depth_profile, measured_depth_profile
from .residual import CRITICALITY_RULES, SpecCriticality, measured_apjn, spec_criticality
from .susceptibility import chi_parallel, chi_perp

__all__ = [
    "CRITICALITY_RULES",
    "Analysis",
    "CorrelationFit",
    "CorrelationSamples",
    "CorrelationScale",
    "CriticalPoint",
    "DepthProfile",
    "DepthScales",
    "FixedPoint",
    "FixedPoints",
    "MeasuredDepthProfile",
    "Phase",
    "PhaseDiagram",
    "ProfileComparison",
    "SpecCriticality",
    "analyze",
    "chi_parallel",
    "chi_perp",
    "compare_correlation_profile",
    "correlation_map",
    "correlation_samples",
    "critical_init_",
    "critical_point",
    "depth_profile",
    "depth_scales",
    "fit_correlation_scale",
    "fixed_points",
    "k_star_zero_decay",
    "measured_apjn",
    "measured_correlation_scale",
    "measured_depth_profile",
    "pair_inputs",
    "phase_diagram",
    "plot_analysis",
    "plot_phase_diagram",
    "spec_criticality",
]
