"""Entropy and widths: Johnson-Lindenstrauss projections and covering numbers."""

from .covering import CoveringEstimate, covering_number, greedy_net, volumetric_bounds
from .johnson_lindenstrauss import jl_dimension, jl_distortion, jl_failure_bound, random_projection

__all__ = [
    "CoveringEstimate",
    "covering_number",
    "greedy_net",
    "jl_dimension",
    "jl_distortion",
    "jl_failure_bound",
    "random_projection",
    "volumetric_bounds",
]
