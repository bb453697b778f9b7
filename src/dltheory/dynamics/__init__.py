"""Training dynamics: large learning rates, the catapult phase, quadratic models.

(Minimal until the training loop of the kernel-regime issue lands here.)
"""

from .catapult import (
    CatapultPhaseDiagram,
    CatapultTrajectory,
    catapult_divergence_threshold,
    catapult_phase_diagram,
    catapult_recursion,
)
from .quadratic import FirstOrderSolution, QuadraticModel, QuadraticTrajectory

__all__ = [
    "CatapultPhaseDiagram",
    "CatapultTrajectory",
    "FirstOrderSolution",
    "QuadraticModel",
    "QuadraticTrajectory",
    "catapult_divergence_threshold",
    "catapult_phase_diagram",
    "catapult_recursion",
]
