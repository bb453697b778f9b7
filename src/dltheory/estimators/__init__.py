"""scikit-learn estimators from infinitely wide networks: NNGP / NTK regression and classification.

``NNGPRegressor`` (GP posterior), ``NTKRegressor`` (gradient flow to time t or
to convergence), ``NNGPClassifier`` / ``NTKClassifier`` (one-hot regression).
They follow scikit-learn's conventions (``fit`` / ``predict`` / ``score``,
``get_params`` / ``set_params``, ``Pipeline``, ``GridSearchCV``) and pass its
``check_estimator``. See ``docs/topics/kernel_methods.md``.
"""

from .base import InfiniteNetworkEstimator
from .classifiers import NNGPClassifier, NTKClassifier
from .regressors import NNGPRegressor, NTKRegressor

__all__ = [
    "InfiniteNetworkEstimator",
    "NNGPClassifier",
    "NNGPRegressor",
    "NTKClassifier",
    "NTKRegressor",
]
