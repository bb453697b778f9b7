"""``NNGPClassifier`` and ``NTKClassifier``: kernel regression on one-hot targets.

Each class c gets the centred one-hot target y_c = 1[label = c] - 1/C (the
prior mean of every output is zero, so centring treats the classes alike);
the C outputs are regressed independently with the NNGP / NTK (Lee et al.
2018, Sec. 3; Arora et al. 2019 for the NTK), ``predict`` takes the argmax.

``predict_proba`` rule: softmax(f(x) / temperature) over the C regressed outputs.
It is monotone in the outputs, so its argmax is ``predict``; the temperature
(default 0.1, a tenth of the gap between the centred targets of a right and a
wrong class) sets how sharp the probabilities are; it is not a calibrated
posterior probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from .base import DEFAULT_EXACT_MEMORY, InfiniteNetworkEstimator, _is_real, _param, validate_data

__all__ = ["NNGPClassifier", "NTKClassifier"]


class _Classifier(ClassifierMixin, InfiniteNetworkEstimator):
    def _check_params(self) -> None:
        super()._check_params()
        _param(
            self,
            "temperature",
            "a real number > 0",
            _is_real(self.temperature) and self.temperature > 0,
        )

    def fit(self, X: Any, y: Any):
        """Fit on X (N, n_0) and class labels y (N,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self._check_params()
        self.classes_, index = np.unique(y, return_inverse=True)
        c = len(self.classes_)
        self._fit_targets(X, np.eye(c)[index] - 1.0 / c)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The regressed centred one-hot outputs, (M, C) (binary: (M,), f_1 - f_0)."""
        _, f = self._latent(X)
        return f[:, 1] - f[:, 0] if f.shape[1] == 2 else f

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(f(x) / temperature) over the classes, (M, C)."""
        _, f = self._latent(X)
        z = f / self.temperature
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest regressed output."""
        _, f = self._latent(X)
        return self.classes_[np.argmax(f, axis=1)]


_DOC_ARGS = """
    Args as :class:`dltheory.estimators.NNGPRegressor`, plus ``temperature`` (> 0)
    of the ``predict_proba`` rule (module docstring)."""


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
        depth: int = 2,
        c_w: float = 2.0,
        c_b: float = 0.0,
        *,
        temperature: float = 0.1,
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
