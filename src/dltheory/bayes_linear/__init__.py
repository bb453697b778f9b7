"""Bayesian deep linear networks: exact evidence and posterior (Hanin & Zlokapa 2023)."""

from .limits import DepthLimit, effective_depth_limit, optimal_sigma2
from .meijer import log_meijer_g, log_meijer_g_normalised
from .monte_carlo import MonteCarloPosterior, monte_carlo_posterior
from .posterior import DeepLinearPosterior, Prediction, deep_linear_posterior

__all__ = [
    "DeepLinearPosterior",
    "DepthLimit",
    "MonteCarloPosterior",
    "Prediction",
    "deep_linear_posterior",
    "effective_depth_limit",
    "log_meijer_g",
    "log_meijer_g_normalised",
    "monte_carlo_posterior",
    "optimal_sigma2",
]
