"""Training dynamics: the training loop with trackers, linearised (kernel-regime)
predictions, the NTK-GP, parametrisations and NTK convergence theory.

Loss normalisation (one, everywhere): MSE L(theta) = 1/(2N) sum_i ||f(x_i) - y_i||^2
over the N training points; then GD on the linearisation is
f_{t+1} - y = (I - (eta/N) Theta)(f_t - y), the Gauss-Newton part of the Hessian is
J^T J / N, and GD on the linearisation is stable iff eta < 2N / lambda_max(Theta).
"""

from .convergence import (
    DuPrediction,
    du_prediction,
    du_two_layer_spec,
    lambda_0,
    width_condition_notes,
    width_condition_paper,
)
from .coord_check import CoordCheck, coord_check
from .linearized import LinearizedPrediction, linearized_outputs, linearized_prediction
from .ntk_gp import NTKGPPrediction, ntk_gp_prediction
from .trackers import BUILTIN_TRACKERS, Tracker
from .training import train
from .trajectory import Divergence, TrainState, Trajectory, mse_loss

__all__ = [
    "BUILTIN_TRACKERS",
    "CoordCheck",
    "Divergence",
    "DuPrediction",
    "LinearizedPrediction",
    "NTKGPPrediction",
    "Tracker",
    "TrainState",
    "Trajectory",
    "coord_check",
    "du_prediction",
    "du_two_layer_spec",
    "lambda_0",
    "linearized_outputs",
    "linearized_prediction",
    "mse_loss",
    "ntk_gp_prediction",
    "train",
    "width_condition_notes",
    "width_condition_paper",
]
