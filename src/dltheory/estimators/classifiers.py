"""``NNGPClassifier`` and ``NTKClassifier``: kernel regression on one-hot targets.

Each class c gets the centred one-hot target y_c = 1[label = c] - 1/C (the
prior mean of every output is zero, so centring treats the classes alike);
the C outputs are regressed independently with the NNGP / NTK (Lee et al.
2018, Sec. 3; Arora et al. 2019 for the NTK), ``predict`` takes the argmax.

``predict_proba`` rule: softmax(f(x) / temperature) over the C regressed outputs.
It is monotone in the outputs, so its argmax is ``predict``. With
``temperature="auto"`` (default) the temperature is calibrated: it minimises the
log-loss of the leave-one-out outputs f_-i(x_i) (held-out folds of one sample,
all from one factorisation, Rasmussen & Williams 2006, Eq. 5.12) on the
training set, or on a random subset of ``max_evidence_samples`` points when N
is larger (temperature scaling, Guo et al. 2017, with held-out outputs instead of
a validation set). For the NTK the leave-one-out outputs are those of the
converged kernel regression. A number fixes the temperature.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.optimize
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from .._checks import message
from .base import (
    DEFAULT_DEPTH_GRID,
    DEFAULT_EVIDENCE_SAMPLES,
    DEFAULT_EXACT_MEMORY,
    InfiniteNetworkEstimator,
    _is_real,
    _param,
    validate_data,
)
from .evidence import loo_latent

__all__ = ["NNGPClassifier", "NTKClassifier"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


class _Classifier(ClassifierMixin, InfiniteNetworkEstimator):
    def _check_params(self) -> None:
        super()._check_params()
        t = self.temperature
        _param(
            self,
            "temperature",
            "'auto' or a real number > 0",
            t == "auto" if isinstance(t, str) else (_is_real(t) and t > 0),
        )

    def fit(self, X: Any, y: Any, sample_weight: Any = None):
        """Fit on X (N, n_0) and class labels y (N,) (2 classes or more); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self._check_params()
        w = self._weights(X, sample_weight)
        if w is not None:
            keep = w > 0
            X, y, w = X[keep], y[keep], w[keep]
        self.classes_, index = np.unique(y, return_inverse=True)
        c = len(self.classes_)
        if c < 2:
            raise ValueError(
                message(
                    "y",
                    "labels of at least 2 classes",
                    f"one class, {self.classes_[0]!r}",
                    "A classifier needs examples of two or more classes",
                )
            )
        Y = np.eye(c)[index] - 1.0 / c
        rng = check_random_state(self.random_state)
        self._learn(X, Y, w, rng)
        X = self._feature_scale(X)
        self._fit_targets(X, Y, w, rng)
        self.temperature_ = self._calibrate(X, Y, index, w, rng)
        return self

    def _calibrate(self, X, Y, index, w, rng) -> float:
        """The temperature minimising the leave-one-out log-loss (module docstring)."""
        if self.temperature != "auto":
            return float(self.temperature)
        idx = self._evidence_subset
        if idx is None and len(X) > self.max_evidence_samples:
            idx = np.sort(rng.choice(len(X), size=self.max_evidence_samples, replace=False))
        if idx is not None:
            X, Y, index = X[idx], Y[idx], index[idx]
            w = None if w is None else w[idx]
        k = getattr(self._network().kernel(torch.from_numpy(np.ascontiguousarray(X))), self._kind)
        k = k.numpy()
        noise = max(self.alpha_, self.jitter_, 1e-10 * float(np.mean(np.diagonal(k))))
        ww = np.ones(len(X)) if w is None else w
        f = loo_latent(k, Y, noise / ww)
        rows = np.arange(len(X))

        def loss(log_t: float) -> float:
            z = f / math.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            logp = z[rows, index] - np.log(np.exp(z).sum(axis=1))
            return float(-np.average(logp, weights=ww))

        res = scipy.optimize.minimize_scalar(loss, bounds=(-12.0, 8.0), method="bounded")
        return float(math.exp(res.x))

    def decision_function(self, X: Any) -> np.ndarray:
        """The regressed centred one-hot outputs, (M, C) (binary: (M,), f_1 - f_0)."""
        _, f = self._latent(X)
        return f[:, 1] - f[:, 0] if f.shape[1] == 2 else f

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(f(x) / temperature_) over the classes, (M, C)."""
        _, f = self._latent(X)
        return _softmax(f / self.temperature_)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest regressed output."""
        _, f = self._latent(X)
        return self.classes_[np.argmax(f, axis=1)]


_DOC_ARGS = """
    Args as :class:`dltheory.estimators.NNGPRegressor` (without ``normalize_y``; the
    evidence is that of the centred one-hot targets), plus ``temperature``
    (``"auto"``: calibrated by leave-one-out log-loss, or a number > 0) of the
    ``predict_proba`` rule (module docstring). Fitted: ``temperature_`` and the
    regressors' attributes."""


class NNGPClassifier(_Classifier):
    __doc__ = (
        "Classification by NNGP regression on centred one-hot targets.\n"
        + _DOC_ARGS
        + """

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.1], [0.1, 2.0]])
    >>> NNGPClassifier(depth=1).fit(X, ["a", "b", "a", "b"]).predict(X).tolist()
    ['a', 'b', 'a', 'b']
    """
    )

    _kind = "nngp"

    def __init__(
        self,
        activation: str = "relu",
        depth: int | str = "auto",
        c_w: float = 2.0,
        c_b: float = 0.0,
        *,
        temperature: float | str = "auto",
        parametrization: str = "ntk",
        width: int | None = None,
        spec: Any = None,
        alpha: float = 1e-10,
        solver: str = "auto",
        n_inducing: int | None = None,
        tol: float = 1e-8,
        max_iter: int = 500,
        exact_memory: int = DEFAULT_EXACT_MEMORY,
        backend: str = "serial",
        address: str | None = None,
        n_workers: int = 2,
        random_state: Any = None,
        optimizer: str | None = "fmin_l_bfgs_b",
        n_restarts_optimizer: int = 0,
        depth_grid: tuple[int, ...] = DEFAULT_DEPTH_GRID,
        max_evidence_samples: int = DEFAULT_EVIDENCE_SAMPLES,
        feature_variances: Any = None,
        architecture: Any = None,
    ) -> None:
        self.activation = activation
        self.depth = depth
        self.c_w = c_w
        self.c_b = c_b
        self.temperature = temperature
        self.parametrization = parametrization
        self.width = width
        self.spec = spec
        self.alpha = alpha
        self.solver = solver
        self.n_inducing = n_inducing
        self.tol = tol
        self.max_iter = max_iter
        self.exact_memory = exact_memory
        self.backend = backend
        self.address = address
        self.n_workers = n_workers
        self.random_state = random_state
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.depth_grid = depth_grid
        self.max_evidence_samples = max_evidence_samples
        self.feature_variances = feature_variances
        self.architecture = architecture


class NTKClassifier(_Classifier):
    __doc__ = (
        "Classification by the converged infinite-width network (NTK regression on "
        "centred one-hot targets).\n"
        + _DOC_ARGS
        + """

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.1], [0.1, 2.0]])
    >>> NTKClassifier(depth=1).fit(X, [0, 1, 0, 1]).predict(X).tolist()
    [0, 1, 0, 1]
    """
    )

    _kind = "ntk"

    __init__ = NNGPClassifier.__init__
