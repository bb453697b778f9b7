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
from sklearn.utils import check_random_state

from .._checks import message
from ..kernels.gram import gram_matrix
from ..kernels.solvers import KernelRidgeFit
from .base import (
    DEFAULT_DEPTH_GRID,
    DEFAULT_EVIDENCE_SAMPLES,
    DEFAULT_EXACT_MEMORY,
    InfiniteNetworkEstimator,
    _is_real,
    _param,
    validate_data,
)

__all__ = ["NNGPRegressor", "NTKRegressor"]


class _Regressor(RegressorMixin, InfiniteNetworkEstimator):
    def fit(self, X: Any, y: Any, sample_weight: Any = None):
        """Fit on X (N, n_0) and y (N,) or (N, k), optionally weighted; returns self.

        ``sample_weight`` (N,) >= 0 weighs each squared error (weight w counts as w
        repeated samples; zero drops the sample); exact and PCG solvers only.
        """
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        self._check_params()
        w = self._weights(X, sample_weight)
        if w is not None:
            keep = w > 0
            X, y, w = X[keep], y[keep], w[keep]
        self._flat = y.ndim == 1
        Y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)  # float32 y: float64 fits
        if self.normalize_y:
            self._y_mean = np.average(Y, axis=0, weights=w)
            std = np.sqrt(np.average((Y - self._y_mean) ** 2, axis=0, weights=w))
            self._y_std = np.where(std > 10 * np.finfo(float).eps * np.abs(self._y_mean), std, 1.0)
            self._y_std[self._y_std == 0] = 1.0
        else:
            self._y_mean, self._y_std = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        Y = (Y - self._y_mean) / self._y_std
        self._weighted = w is not None
        rng = check_random_state(self.random_state)
        self._learn(X, Y, w, rng)
        X = self._feature_scale(X)
        self._fit_targets(X, Y, w, rng)
        return self

    def _shape(self, a: np.ndarray) -> np.ndarray:
        return a[:, 0] if self._flat else a

    def predict(self, X: Any, return_std: bool = False, return_cov: bool = False):
        """Mean prediction (M,) or (M, k); with ``return_std`` / ``return_cov`` also the
        standard deviation / covariance of the latent function: (M,) / (M, M) for 1-D y,
        (M, k) / (M, M, k) for 2-D y (as ``GaussianProcessRegressor``); exact solver (and,
        for the NTK, PCG) only."""
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        X, latent = self._latent(X)
        mean = self._shape(latent * self._y_std + self._y_mean)
        if not (return_std or return_cov):
            return mean
        spread = self._posterior_spread(X, full=return_cov)
        if return_std:
            std = np.sqrt(np.maximum(spread, 0))
            return mean, (std * self._y_std[0] if self._flat else std[:, None] * self._y_std)
        if self._flat:
            return mean, spread * self._y_std[0] ** 2
        return mean, spread[:, :, None] * self._y_std**2

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
            (``MLP(depth, activation, c_w, c_b, width, parametrization=...)``);
            ``depth="auto"``: chosen by evidence from ``depth_grid`` (2 without optimizer).
            With an optimizer, c_w, c_b (and alpha) are the starting values.
        spec: a dltheory spec used instead of the architecture arguments (its
            hyperparameters are kept: no optimizer runs).
        architecture: a torch ``nn.Module`` (lifted by ``spec_from_module``) or a spec
            whose kernel is used; X may then be images (N, C, H, W) / (N, C, L). Not
            with ``spec``; the optimizer learns the noise ``alpha_`` only (see
            :mod:`dltheory.estimators.architecture`).
        alpha: observation-noise variance / ridge added to the diagonal (>= 0), of
            the normalised targets when ``normalize_y``.
        solver: ``"exact"``, ``"cg"`` or ``"auto"`` (see :mod:`dltheory.estimators.base`).
        n_inducing: Falkon centres for the CG solver (``None``: exact system by PCG).
        tol, max_iter: CG stopping rule.
        exact_memory: ``"auto"`` uses the exact solver while 8 N^2 bytes fit in this.
        backend, address, n_workers: where the block products run (``"dask"``:
            a LocalCluster of ``n_workers``, or the scheduler at ``address``).
        random_state: int, RandomState or None: the CG solvers' Nystrom columns /
            centres, the evidence subset and the optimizer's restarts.
        optimizer: ``"fmin_l_bfgs_b"`` (learn c_w, c_b, alpha and the depth by
            evidence, :mod:`dltheory.estimators.evidence`) or ``None`` (keep them).
        n_restarts_optimizer: further random starts of the optimizer per depth.
        depth_grid: depths compared with ``depth="auto"``.
        normalize_y: fit the GP to targets standardised per column (and scale back).
        max_evidence_samples: hyperparameters are learned on a random subset of
            this many points when N is larger.
        feature_variances: per-feature input variances v (the input Gram becomes
            sum_i v_i x_i x'_i / n_0, the NNGP's analogue of ARD): ``None`` (all 1),
            ``"learn"`` (by evidence with the other hyperparameters; a feature whose
            v_i ends at the lower bound is irrelevant to the fit) or (n_0,) numbers.

    Fitted attributes: ``dual_coef_`` (coefficients on ``centres_``), ``jitter_``
    (diagonal jitter the Cholesky needed), ``solver_`` (``"exact"``, ``"pcg"`` or
    ``"falkon"``: what ran), ``n_iter_``, ``converged_``, ``depth_``, ``c_w_``,
    ``c_b_``, ``alpha_`` (the hyperparameters used), ``log_marginal_likelihood_``
    (of the normalised targets; on the evidence subset if one was drawn),
    ``factor_`` (the exact solver's Cholesky, for ``return_std``),
    ``feature_variances_`` ((n_0,) or None), ``n_features_in_``.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> model = NNGPRegressor(depth=1, c_w=2.0, alpha=0.0, optimizer=None).fit(X, [1.0, -1.0])
    >>> np.round(model.predict(X), 10).tolist()  # interpolates
    [1.0, -1.0]
    """

    _kind = "nngp"
    _keeps_factor = True  # return_std / return_cov solve with it

    def __init__(
        self,
        activation: str = "relu",
        depth: int | str = "auto",
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
        optimizer: str | None = "fmin_l_bfgs_b",
        n_restarts_optimizer: int = 0,
        depth_grid: tuple[int, ...] = DEFAULT_DEPTH_GRID,
        normalize_y: bool = True,
        max_evidence_samples: int = DEFAULT_EVIDENCE_SAMPLES,
        feature_variances: Any = None,
        architecture: Any = None,
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
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.depth_grid = depth_grid
        self.normalize_y = normalize_y
        self.max_evidence_samples = max_evidence_samples
        self.feature_variances = feature_variances
        self.architecture = architecture


class NTKRegressor(_Regressor):
    """The infinitely wide MLP trained by gradient flow (NTK regime), as a regressor.

    Args as :class:`NNGPRegressor`, plus:
        t: training time (``None``: trained to convergence); finite ``t`` uses the
            exact solver (an eigendecomposition of the N x N NTK).
        lr: learning rate of the gradient flow (time is in units of lr * steps).

    ``alpha`` regularises Theta -> Theta + alpha I (ridge on the NTK). The optimizer
    maximises the evidence of the GP whose covariance is Theta (its posterior mean is
    the converged network's mean); ``t`` and ``lr`` are kept as given.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> model = NTKRegressor(depth=1, c_w=2.0, alpha=0.0, optimizer=None).fit(X, [1.0, -1.0])
    >>> np.round(model.predict(X), 10).tolist()  # converged: interpolates
    [1.0, -1.0]
    """

    _kind = "ntk"

    def __init__(
        self,
        activation: str = "relu",
        depth: int | str = "auto",
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
        optimizer: str | None = "fmin_l_bfgs_b",
        n_restarts_optimizer: int = 0,
        depth_grid: tuple[int, ...] = DEFAULT_DEPTH_GRID,
        normalize_y: bool = True,
        max_evidence_samples: int = DEFAULT_EVIDENCE_SAMPLES,
        feature_variances: Any = None,
        architecture: Any = None,
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
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.depth_grid = depth_grid
        self.normalize_y = normalize_y
        self.max_evidence_samples = max_evidence_samples
        self.feature_variances = feature_variances
        self.architecture = architecture

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

    def _fit_targets(self, X: np.ndarray, Y: np.ndarray, w=None, rng=None) -> None:
        if self.t is None:
            super()._fit_targets(X, Y, w, rng)
            return
        if w is not None:
            raise ValueError(
                message(
                    "sample_weight",
                    "None for a finite training time t",
                    "weights",
                    "Gradient flow on the unweighted loss has no sample weights; use t=None",
                )
            )
        # alpha_t = (Theta + alpha I)^-1 (I - exp(-lr (Theta + alpha I) t / N)) y: the
        # NTK-GP mean (Lee et al. 2019, Eq. 15) with Theta_*n = I.
        x = torch.from_numpy(np.ascontiguousarray(X))
        theta = torch.from_numpy(gram_matrix(self._network(), x, kind="ntk"))
        n = len(X)
        coef = _ntk_gp_prediction()(
            theta, torch.eye(n, dtype=torch.float64), Y, t=self.t, lr=self.lr,
            diag_reg=_diag_reg(self.alpha_, theta),
        ).mean  # fmt: skip
        self._store(KernelRidgeFit(coef.numpy(), x, 0.0, 1, (), True, None), "exact")

    def _posterior_spread(self, X: np.ndarray, full: bool) -> np.ndarray:
        """Variance / covariance over initialisations of the trained network (Lee et al. 2019)."""
        spec = self._network()
        xs, xn = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(self.centres_)
        self._refuse_falkon_spread()
        if self._weighted:
            raise ValueError(
                message(
                    "sample_weight",
                    "None for the NTK's return_std / return_cov",
                    "weights",
                    "The spread over initialisations is defined for the unweighted loss",
                )
            )
        train, cross, test = spec.kernel(xn), spec.kernel(xs, xn), spec.kernel(xs)
        pred = _ntk_gp_prediction()(
            train.ntk, cross.ntk, np.zeros((len(xn), 1)), t=self.t, lr=self.lr,
            nngp_train_train=train.nngp, nngp_test_train=cross.nngp,
            nngp_test_test=test.nngp, ntk_test_test=test.ntk,
            diag_reg=_diag_reg(self.alpha_, train.ntk),
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
