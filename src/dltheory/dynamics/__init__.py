"""Training dynamics: the training loop with trackers, linearised (kernel-regime)
predictions, the NTK-GP, parametrisations and NTK convergence theory; large
learning rates (stability thresholds, the catapult phase, quadratic models and
the edge of stability).

Loss normalisation (one, everywhere): MSE L(theta) = 1/(2N) sum_i ||f(x_i) - y_i||^2
over the N training points; then GD on the linearisation is
f_{t+1} - y = (I - (eta/N) Theta)(f_t - y), the Gauss-Newton part of the Hessian is
J^T J / N, and GD on the linearisation is stable iff eta < 2N / lambda_max(Theta).
"""

from .catapult import (
    CatapultPhaseDiagram,
    CatapultTrajectory,
    catapult_divergence_threshold,
    catapult_phase_diagram,
    catapult_recursion,
)
from .catapult_networks import CatapultRun, CatapultScan, catapult_scan
from .convergence import (
    DuPrediction,
    du_prediction,
    du_two_layer_spec,
    lambda_0,
    width_condition_notes,
    width_condition_paper,
)
from .coord_check import CoordCheck, coord_check
from .edge_of_stability import EdgeOfStability, Sharpness, edge_of_stability_summary
from .learning_rate import StableLearningRate, max_stable_lr
from .linearized import LinearizedPrediction, linearized_outputs, linearized_prediction
from .ntk_gp import NTKGPPrediction, ntk_gp_prediction
from .quadratic import FirstOrderSolution, QuadraticModel, QuadraticTrajectory
from .trackers import BUILTIN_TRACKERS, NTKEigenvalue, Tracker
from .training import train
from .trajectory import Divergence, TrainState, Trajectory, mse_loss

__all__ = [
    "BUILTIN_TRACKERS",
    "CatapultPhaseDiagram",
    "CatapultRun",
    "CatapultScan",
    "CatapultTrajectory",
    "CoordCheck",
    "Divergence",
    "DuPrediction",
    "EdgeOfStability",
    "FirstOrderSolution",
    "LinearizedPrediction",
    "NTKEigenvalue",
    "NTKGPPrediction",
    "QuadraticModel",
    "QuadraticTrajectory",
    "Sharpness",
    "StableLearningRate",
    "Tracker",
    "TrainState",
    "Trajectory",
    "catapult_divergence_threshold",
    "catapult_phase_diagram",
    "catapult_recursion",
    "catapult_scan",
    "coord_check",
    "du_prediction",
    "du_two_layer_spec",
    "edge_of_stability_summary",
    "lambda_0",
    "linearized_outputs",
    "linearized_prediction",
    "max_stable_lr",
    "mse_loss",
    "ntk_gp_prediction",
    "train",
    "width_condition_notes",
    "width_condition_paper",
]
