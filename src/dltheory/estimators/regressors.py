"""``NNGPRegressor`` and ``NTKRegressor``: infinite-width networks as scikit-learn regressors.

* NNGP: the Bayesian posterior of an infinitely wide network (Neal 1996; Lee
  et al. 2018): mean K_*n (K + alpha I)^-1 y, latent variance
  K_** - K_*n (K + alpha I)^-1 K_n*.
* NTK: the infinitely wide network trained by gradient flow on the MSE loss
  L = |f - y|^2 / (2N) (Jacot et al. 2018; Lee et al. 2019). At convergence
  (``t=None``) its mean prediction is Theta_*n (Theta + alpha I)^-1 y, kernel
  regression with the NTK; at time t it is
  Theta_*n Theta^-1 (I - exp(-lr Theta t / N)) y. ``return_std`` gives the spread
  of the trained network's output over random initialisations (it needs the
  NNGP blocks too), not a Bayesian posterior.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin

from .._checks import message
from ..kernels.gram import gram_matrix
from ..kernels.solvers import KernelRidgeFit
from .base import DEFAULT_EXACT_MEMORY, InfiniteNetworkEstimator, _is_real, _param, validate_data

__all__ = ["NNGPRegressor", "NTKRegressor"]


class _Regressor(RegressorMixin, InfiniteNetworkEstimator):
    def fit(self, X: Any, y: Any):
        """Fit on X (N, n_0) and y (N,) or (N, k); returns self."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        self._check_params()
        self._flat = y.ndim == 1
        self._fit_targets(X, y.reshape(len(X), -1))
        return self

    def _shape(self, a: np.ndarray) -> np.ndarray:
        return a[:, 0] if self._flat else a

    def predict(self, X: Any, return_std: bool = False, return_cov: bool = False):
        """Mean prediction (M,) or (M, k); with ``return_std`` / ``return_cov`` also the
        latent standard deviation (M,) / covariance (M, M) (exact solver only)."""
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        X, mean = self._latent(X)
        if not (return_std or return_cov):
            return self._shape(mean)
        spread = self._posterior_spread(X, full=return_cov)
        return self._shape(mean), (np.sqrt(np.maximum(spread, 0)) if return_std else spread)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


class NNGPRegressor(_Regressor):
    """Gaussian-process regression with the NNGP kernel of an infinitely wide MLP.

    Args:
        activation, depth, c_w, c_b, parametrization, width: the architecture
            (``MLP(depth, activation, c_w, c_b, width, parametrization=...)``).
        spec: a dltheory spec used instead of the architecture arguments.
        alpha: observation-noise variance / ridge added to the diagonal (>= 0).
        solver: ``"exact"``, ``"cg"`` or ``"auto"`` (see :mod:`dltheory.estimators.base`).
        n_inducing: Falkon centres for the CG solver (``None``: exact system by PCG).
        tol, max_iter: CG stopping rule.
        exact_memory: ``"auto"`` uses the exact solver while 8 N^2 bytes fit in this.
        backend, address, n_workers: where the block products run (``"dask"``:
            a LocalCluster of ``n_workers``, or the scheduler at ``address``).
        random_state: picks the CG solvers' Nystrom columns / centres.

    Fitted attributes: ``dual_coef_`` (coefficients on ``centres_``), ``jitter_``
    (diagonal jitter the Cholesky needed), ``solver_``, ``n_iter_``, ``converged_``,
    ``n_features_in_``.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> model = NNGPRegressor(depth=1, c_w=2.0, alpha=0.0).fit(X, [1.0, -1.0])
    >>> np.round(model.predict(X), 10).tolist()  # interpolates
    [1.0, -1.0]
    """

    _kind = "nngp"

    def __init__(
        self,
        activation: str = "relu",
        depth: int = 2,
        c_w: float = 2.0,
        c_b: float = 0.0,
        *,
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


class NTKRegressor(_Regressor):
    """The infinitely wide MLP trained by gradient flow (NTK regime), as a regressor.

    Args as :class:`NNGPRegressor`, plus:
        t: training time (``None``: trained to convergence); finite ``t`` uses the
            exact solver (an eigendecomposition of the N x N NTK).
        lr: learning rate of the gradient flow (time is in units of lr * steps).

    ``alpha`` regularises Theta -> Theta + alpha I (ridge on the NTK).

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> model = NTKRegressor(depth=1, c_w=2.0, alpha=0.0).fit(X, [1.0, -1.0])
    >>> np.round(model.predict(X), 10).tolist()  # converged: interpolates
    [1.0, -1.0]
    """

    _kind = "ntk"

    def __init__(
        self,
        activation: str = "relu",
        depth: int = 2,
        c_w: float = 2.0,
        c_b: float = 0.0,
        *,
        t: float | None = None,
        lr: float = 1.0,
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
        self.t = t
        self.lr = lr
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

    def _check_params(self) -> None:
        super()._check_params()
        _param(self, "t", "None or a real number >= 0", self.t is None or (
            _is_real(self.t) and self.t >= 0))  # fmt: skip
        _param(self, "lr", "a real number > 0", _is_real(self.lr) and self.lr > 0)
        if self.t is not None and self.solver == "cg":
            raise ValueError(
                message(
                    "solver",
                    "'exact' or 'auto' for a finite training time t",
                    self.solver,
                    "The finite-t prediction needs the NTK's eigendecomposition",
                )
            )

    def _fit_targets(self, X: np.ndarray, Y: np.ndarray) -> None:
        if self.t is None:
            super()._fit_targets(X, Y)
            return
        # alpha_t = (Theta + alpha I)^-1 (I - exp(-lr (Theta + alpha I) t / N)) y: the
        # NTK-GP mean (Lee et al. 2019, Eq. 15) with Theta_*n = I.
        x = torch.from_numpy(np.ascontiguousarray(X))
        theta = torch.from_numpy(gram_matrix(self._network(), x, kind="ntk"))
        n = len(X)
        coef = _ntk_gp_prediction()(
            theta, torch.eye(n, dtype=torch.float64), Y, t=self.t, lr=self.lr,
            diag_reg=_diag_reg(self.alpha, theta),
        ).mean  # fmt: skip
        self._store(KernelRidgeFit(coef.numpy(), x, 0.0, 1, (), True, None), "exact")

    def _posterior_spread(self, X: np.ndarray, full: bool) -> np.ndarray:
        """Variance / covariance over initialisations of the trained network (Lee et al. 2019)."""
        spec = self._network()
        xs, xn = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(self.centres_)
        if self.solver_ == "falkon":
            raise ValueError(
                message("solver", "'exact' or 'cg' without n_inducing for return_std", "falkon")
            )
        train, cross, test = spec.kernel(xn), spec.kernel(xs, xn), spec.kernel(xs)
        pred = _ntk_gp_prediction()(
            train.ntk, cross.ntk, np.zeros((len(xn), 1)), t=self.t, lr=self.lr,
            nngp_train_train=train.nngp, nngp_test_train=cross.nngp,
            nngp_test_test=test.nngp, ntk_test_test=test.ntk,
            diag_reg=_diag_reg(self.alpha, train.ntk),
        )  # fmt: skip
        cov = pred.cov.numpy()
        return cov if full else np.diagonal(cov).copy()


def _ntk_gp_prediction():
    """``dltheory.dynamics.ntk_gp_prediction`` (imported when first needed)."""
    from ..dynamics import ntk_gp_prediction

    return ntk_gp_prediction


def _diag_reg(alpha: float, theta: torch.Tensor) -> float:
    """``ntk_gp_prediction``'s relative ``diag_reg`` that adds ``alpha`` to Theta's diagonal."""
    trace = float(torch.trace(theta))
    return alpha * len(theta) / trace if trace > 0 else 0.0
