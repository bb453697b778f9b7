"""Implicit bias: diagonal linear nets, the max-margin limit of logistic GD, SGD noise.

Sources: Woodworth et al. (2020), Soudry et al. (2018), Wei & Schwab (2019).

* :mod:`.diagonal`: diagonal linear networks beta = theta_+^2 - theta_-^2, their
  gradient-flow limit and the Q_alpha potential (Woodworth et al. 2020), from
  min-L1 (alpha -> 0) to min weighted-L2 (alpha -> infinity);
* :mod:`.margin`, :mod:`.logistic`: the hard-margin SVM through the origin and
  GD on separable data, w(t) = w_hat log t + w_tilde (Soudry et al. 2018);
* :mod:`.sgd_noise`: the mini-batch gradient's second moment C~ and covariance
  C, and Yaida's (2018) fluctuation-dissipation relations;
* :mod:`.entropic`, :mod:`.walk`: SGD's drift toward flat regions and the
  course's challenge walk (stationary density proportional to 1 / speed^2).
"""

from .diagonal import (
    min_l1_interpolant,
    min_weighted_l2_interpolant,
    q_alpha_argmin,
    q_function,
    q_potential,
)
from .diagonal_flow import DiagonalFlow, diagonal_flow, diagonal_flow_limit
from .entropic import ValleyRun, valley_drift_prediction, valley_sgd
from .logistic import GDTrajectory, SoudryAsymptotics, logistic_gd, soudry_asymptotics
from .margin import MaxMargin, max_margin, max_margin_direction, separable_dataset
from .sgd_noise import (
    SAMPLINGS,
    FluctuationDissipation,
    GradientNoise,
    gradient_noise,
    linear_regression_gradients,
    sgd_fluctuation_dissipation,
)
from .walk import WalkRun, challenge_walk, lattice_slow_mass, walk_density

__all__ = [
    "SAMPLINGS",
    "DiagonalFlow",
    "FluctuationDissipation",
    "GDTrajectory",
    "GradientNoise",
    "MaxMargin",
    "SoudryAsymptotics",
    "ValleyRun",
    "WalkRun",
    "challenge_walk",
    "diagonal_flow",
    "diagonal_flow_limit",
    "gradient_noise",
    "lattice_slow_mass",
    "linear_regression_gradients",
    "logistic_gd",
    "max_margin",
    "max_margin_direction",
    "min_l1_interpolant",
    "min_weighted_l2_interpolant",
    "q_alpha_argmin",
    "q_function",
    "q_potential",
    "separable_dataset",
    "sgd_fluctuation_dissipation",
    "soudry_asymptotics",
    "valley_drift_prediction",
    "valley_sgd",
    "walk_density",
]
