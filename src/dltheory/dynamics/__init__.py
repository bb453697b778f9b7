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
from .edge_of_stability import EdgeOfStability, Sharpness, edge_of_stability_summary
from .learning_rate import StableLearningRate, max_stable_lr
from .quadratic import FirstOrderSolution, QuadraticModel, QuadraticTrajectory

__all__ = [
    "CatapultPhaseDiagram",
    "CatapultTrajectory",
    "EdgeOfStability",
    "FirstOrderSolution",
    "QuadraticModel",
    "QuadraticTrajectory",
    "Sharpness",
    "StableLearningRate",
    "catapult_divergence_threshold",
    "catapult_phase_diagram",
    "catapult_recursion",
    "edge_of_stability_summary",
    "max_stable_lr",
]
