"""Criticality: susceptibilities, fixed points and critical initialisations.

Names: ``c_w``, ``c_b`` (weight and bias variances), ``k_star`` (fixed point of
the diagonal kernel map), ``chi_parallel`` and ``chi_perp`` (its
susceptibilities), as in Roberts, Yaida & Hanin (2022), ch. 5.

>>> from dltheory.criticality import chi_perp
>>> float(chi_perp("relu", 2.0, 1.0))
1.0
"""

from .critical_point import CriticalPoint, critical_point, k_star_zero_decay
from .fixed_points import FixedPoint, FixedPoints, fixed_points
from .susceptibility import chi_parallel, chi_perp

__all__ = [
    "CriticalPoint",
    "FixedPoint",
    "FixedPoints",
    "chi_parallel",
    "chi_perp",
    "critical_point",
    "fixed_points",
    "k_star_zero_decay",
]
