"""What the NNGP / NTK estimators share: the architecture, the solvers, validation.

An estimator is an infinite-width network used as a kernel machine. Its
hyperparameters name the architecture (``activation``, ``depth``, ``c_w``,
``c_b``, ``parametrization``, ``width``) or give a ``spec``; ``alpha`` is the
noise variance / ridge added to the kernel's diagonal; ``solver`` picks the
linear algebra (:mod:`dltheory.kernels.solvers`):

* ``"exact"``: Cholesky of the N x N Gram in one buffer, in place;
* ``"cg"``: matrix-free conjugate gradients: with ``n_inducing=None`` the exact
  system by Nystrom-preconditioned CG, with ``n_inducing=m`` Falkon's Nystrom
  kernel ridge on m centres (scales to millions of points);
* ``"auto"``: exact while the Gram fits in ``exact_memory`` bytes, else Falkon.

``solver_`` records what ran: ``"exact"``, ``"pcg"`` or ``"falkon"``; an
iterative solver that stops before ``tol`` raises scikit-learn's
``ConvergenceWarning``.

Hyperparameters are learned in ``fit`` unless ``optimizer=None``, as in
scikit-learn's ``GaussianProcessRegressor``: (c_w, c_b, alpha) maximise the
evidence with exact gradients (:mod:`dltheory.estimators.evidence`), and with
``depth="auto"`` the depth is the best of ``depth_grid``. Above
``max_evidence_samples`` points they are learned on a random subset of that size.

``backend="dask"`` runs the matrix-free block products (and predictions) on
Dask workers through :func:`dltheory.parallel.pool`.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._checks import message
from ..kernels.gram import kernel_product
from ..kernels.solvers import KernelRidgeFit, fit_exact, fit_falkon, fit_pcg
from ..parallel import pool
from ..spec.layers import Serial
from ..spec.mlp import MLP
from .architecture import flatten_images, learn_noise, resolve_architecture, with_input_shape
from .evidence import learn_hyperparameters, warn_on_bounds

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate
except ImportError:  # pragma: no cover - older scikit-learn

    def _sk_validate(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


__all__ = ["InfiniteNetworkEstimator", "validate_data"]


def validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
    """scikit-learn's validation; images of an ``architecture`` flattened to rows first."""
    if not isinstance(X, str):
        X = flatten_images(estimator, X, reset=kwargs.get("reset", True))
    return _sk_validate(estimator, X, y, **kwargs)


DEFAULT_EXACT_MEMORY = 4 << 30  # bytes: "auto" factorises Grams up to this size
DEFAULT_DEPTH = 2  # depth="auto" without an optimizer
DEFAULT_DEPTH_GRID = (1, 2, 3, 4)  # depths compared by evidence with depth="auto"
DEFAULT_EVIDENCE_SAMPLES = 2000  # hyperparameters learned on at most this many points


#: deepest network the estimators take: the kernel recursion costs O(depth) per pair, and
#: past ~1e4 layers every kernel has reached its fixed point (depth 10,000 is tested)
MAX_DEPTH = 100_000


def _param(est: Any, name: str, constraint: str, ok: bool) -> None:
    if not ok:
        raise ValueError(
            message(
                f"The {name!r} parameter of {type(est).__name__}",
                constraint,
                getattr(est, name),
            )
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class InfiniteNetworkEstimator(BaseEstimator):
    """Base class: an infinite-width MLP's kernel (``_kind``) used for kernel ridge."""

    _kind = "nngp"
    _keeps_factor = False  # whether predictions need the N x N Cholesky factor

    # ----------------------------------------------------------- hyperparameters
    def _check_params(self) -> None:
        _param(
            self,
            "depth",
            f"an integer in [1, {MAX_DEPTH}] or 'auto'",
            self.depth == "auto" if isinstance(self.depth, str) else (
                _is_int(self.depth) and 1 <= self.depth <= MAX_DEPTH),
        )  # fmt: skip
        for name in ("c_w", "c_b"):
            v = getattr(self, name)
            _param(self, name, "a real number >= 0", _is_real(v) and v >= 0)
        _param(self, "alpha", "a real number >= 0", _is_real(self.alpha) and self.alpha >= 0)
        _param(
            self, "solver", "one of 'auto', 'exact', 'cg'", self.solver in ("auto", "exact", "cg")
        )
        _param(
            self,
            "n_inducing",
            "None or an integer >= 1",
            self.n_inducing is None or (_is_int(self.n_inducing) and self.n_inducing >= 1),
        )
        _param(self, "tol", "a real number > 0", _is_real(self.tol) and self.tol > 0)
        _param(self, "max_iter", "an integer >= 1", _is_int(self.max_iter) and self.max_iter >= 1)
        _param(self, "backend", "'serial' or 'dask'", self.backend in ("serial", "dask"))
        _param(
            self,
            "optimizer",
            "'fmin_l_bfgs_b' or None",
            self.optimizer is None or (
                isinstance(self.optimizer, str) and self.optimizer == "fmin_l_bfgs_b"),
        )  # fmt: skip
        _param(
            self,
            "n_restarts_optimizer",
            "an integer in [0, 10000] (each restart is one optimisation)",
            _is_int(self.n_restarts_optimizer) and 0 <= self.n_restarts_optimizer <= 10_000,
        )
        grid = self.depth_grid
        _param(
            self,
            "depth_grid",
            "a non-empty tuple of integers >= 1",
            isinstance(grid, tuple | list) and len(grid) > 0
            and all(_is_int(d) and d >= 1 for d in grid),
        )  # fmt: skip
        _param(
            self,
            "max_evidence_samples",
            "an integer >= 2",
            _is_int(self.max_evidence_samples) and self.max_evidence_samples >= 2,
        )
        if self.optimizer is None and (
            self.solver == "cg" or (self.solver == "auto" and self.n_inducing is not None)
        ):
            _param(self, "alpha", "> 0 for the CG solvers", self.alpha > 0)
        _param(
            self,
            "spec",
            "None or a dltheory Serial/MLP spec",
            self.spec is None or isinstance(self.spec, Serial),
        )

    def _network(self) -> Serial:
        """The architecture (or spec) if given, else the MLP of the fitted hyperparameters."""
        if getattr(self, "architecture_", None) is not None:
            return self.architecture_
        if self.spec is not None:
            return self.spec
        return MLP(
            self.depth_,
            self.activation,
            c_w=self.c_w_,
            c_b=self.c_b_,
            width=self.width,
            parametrization=self.parametrization,
        )

    def _pool(self):
        """A context yielding ``None`` (serial: the process's threads) or a Dask pool."""
        if self.backend == "serial":
            return contextlib.nullcontext(None)
        return pool("dask", address=self.address, n_workers=self.n_workers)

    # ----------------------------------------------------------------- fitting
    def _solver_name(self, n: int) -> str:
        """What will run: ``"exact"``, ``"pcg"`` or ``"falkon"``."""
        if self.solver == "exact" or (self.solver == "auto" and 8 * n * n <= self.exact_memory):
            return "exact"
        if self.solver == "cg" and self.n_inducing is None:
            return "pcg"
        return "falkon"

    def _weights(self, X: np.ndarray, sample_weight: Any) -> np.ndarray | None:
        """Validated sample weights (None if not given); zero weights are dropped by the caller."""
        if sample_weight is None:
            return None
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not (w > 0).any():
            raise ValueError(message("sample_weight", "positive somewhere", "all zero"))
        return w

    def _learn(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None, rng) -> None:
        """Set depth_, c_w_, c_b_, alpha_ (learned by evidence, or as given)."""
        self.depth_ = DEFAULT_DEPTH if self.depth == "auto" else self.depth
        self.c_w_, self.c_b_, self.alpha_ = float(self.c_w), float(self.c_b), float(self.alpha)
        self.log_marginal_likelihood_ = None
        self._evidence_subset = None
        ard = self._check_feature_variances(X)
        X = self._feature_scale(X)
        arch = resolve_architecture(self)  # architecture= / spec= (estimators/architecture.py)
        if arch is not None and self.feature_variances is not None:
            raise ValueError(
                message(
                    "feature_variances",
                    "None when an architecture or a spec is given (they set their own input layer)",
                    self.feature_variances,
                )
            )
        self.architecture_ = None
        if arch is not None:
            self.architecture_ = with_input_shape(arch, getattr(self, "input_shape_", None))
            if self.architecture is not None and self.optimizer is not None and w is None:
                k = getattr(self.architecture_.kernel(torch.from_numpy(X)), self._kind).numpy()
                self.alpha_, self.log_marginal_likelihood_ = learn_noise(k, Y, self.alpha)
        if self.optimizer is None or arch is not None:
            return
        n = len(X)
        idx = None
        if n > self.max_evidence_samples:
            idx = np.sort(rng.choice(n, size=self.max_evidence_samples, replace=False))
        self._evidence_subset = idx
        xs, ys = (X, Y) if idx is None else (X[idx], Y[idx])
        ws = None if w is None else (w if idx is None else w[idx])
        grid = tuple(self.depth_grid) if self.depth == "auto" else (self.depth,)
        scale = float(np.mean(ys * ys)) or 1.0
        noise0 = self.alpha if self.alpha >= 1e-6 * scale else 0.1 * scale
        fit = learn_hyperparameters(
            xs, ys, ws, activation=self.activation, depths=grid, kind=self._kind,
            parametrization=self.parametrization, width=self.width,
            start=(max(self.c_w, 1e-3), self.c_b if self.c_b > 0 else 0.1, noise0),
            n_restarts=self.n_restarts_optimizer, rng=rng, ard=ard,
        )  # fmt: skip
        if ard:
            self.feature_variances_ = fit.feature_variances
        warn_on_bounds(fit, type(self).__name__)
        self.depth_, self.c_w_, self.c_b_, self.alpha_ = fit.depth, fit.c_w, fit.c_b, fit.noise
        self.log_marginal_likelihood_ = fit.log_marginal_likelihood

    def _check_feature_variances(self, X: np.ndarray) -> bool:
        """Set ``feature_variances_`` (None, the given (n_0,) array, or ones to learn from)."""
        fv = getattr(self, "feature_variances", None)
        learn = isinstance(fv, str) and fv == "learn"
        self.feature_variances_ = np.ones(X.shape[1]) if learn else None
        if fv is not None and not learn:
            v = np.asarray(fv, dtype=np.float64) if not isinstance(fv, str) else np.array([])
            _param(self, "feature_variances", f"None, 'learn' or {X.shape[1]} finite "
                   "numbers > 0", v.shape == (X.shape[1],) and bool(np.all(v > 0))
                   and bool(np.all(np.isfinite(v))))  # fmt: skip
            self.feature_variances_ = v
        return learn and self.optimizer is not None and self.spec is None

    def _feature_scale(self, X: np.ndarray) -> np.ndarray:
        """X * sqrt(v): the input Gram sum_i v_i x_i x'_i / n_0 of the per-feature variances."""
        v = getattr(self, "feature_variances_", None)
        return X if v is None else X * np.sqrt(v)

    def _fit_targets(
        self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None, rng: Any = None
    ) -> None:
        """Solve for the coefficients of K(., centres) @ dual_coef_ on (N, k) targets Y."""
        rng = check_random_state(self.random_state) if rng is None else rng
        spec = self._network()
        n = len(X)
        solver = self._solver_name(n)
        if solver != "exact" and self.alpha_ <= 0:
            raise ValueError(
                message(
                    f"The 'alpha' parameter of {type(self).__name__}",
                    "> 0 for the CG solvers",
                    self.alpha_,
                )
            )
        seed = int(rng.randint(2**31 - 1))
        x = torch.from_numpy(np.array(X, dtype=np.float64, order="C"))  # writable copy
        y = np.ascontiguousarray(Y, dtype=np.float64)
        with self._pool() as p:
            if solver == "exact":
                fit = fit_exact(spec, x, y, kind=self._kind, ridge=self.alpha_, weights=w)
            elif solver == "pcg":
                fit = fit_pcg(spec, x, y, kind=self._kind, ridge=self.alpha_, tol=self.tol,
                              max_iter=self.max_iter, seed=seed, pool=p, weights=w)  # fmt: skip
            else:
                m = self.n_inducing or min(n, math.ceil(4 * math.sqrt(n) * math.log(n + 1)))
                fit = fit_falkon(spec, x, y, kind=self._kind, ridge=self.alpha_, n_inducing=m,
                                 tol=self.tol, max_iter=self.max_iter, seed=seed,
                                 pool=p, weights=w)  # fmt: skip
        self._store(fit, solver)
        if solver == "exact" and (self.optimizer is None or self.spec is not None or (
                self._evidence_subset is None)):  # fmt: skip
            self.log_marginal_likelihood_ = fit.log_marginal_likelihood

    def _store(self, fit: KernelRidgeFit, solver: str) -> None:
        self.dual_coef_ = fit.alpha
        self.centres_ = fit.centres.numpy()
        self.jitter_ = fit.jitter
        self.solver_ = solver
        self.precision_ = fit.precision  # exact solver: "float64" or "mixed" (float32 factor)
        self.n_iter_ = max(fit.iterations, 1)  # a direct solve counts as one iteration
        self.converged_ = fit.converged
        self.factor_ = fit.factor if self._keeps_factor else None
        if not fit.converged:
            warnings.warn(
                f"{type(self).__name__}: the {solver} solver stopped after {fit.iterations} "
                f"iterations (max_iter={self.max_iter}) with relative residual "
                f"{fit.residuals[-1]:.2e} > tol={self.tol:.1e}; the coefficients are not "
                "converged. Increase max_iter or alpha.",
                ConvergenceWarning,
                stacklevel=4,
            )

    # -------------------------------------------------------------- prediction
    def _latent(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(validated X, (M, k) outputs K(X, centres_) @ dual_coef_)."""
        check_is_fitted(self, "dual_coef_")
        X = self._feature_scale(validate_data(self, X, reset=False, dtype=np.float64))
        spec = self._network()
        x = torch.from_numpy(np.array(X, dtype=np.float64, order="C"))
        with self._pool() as p:
            out = kernel_product(
                spec, x, torch.from_numpy(self.centres_), torch.from_numpy(self.dual_coef_),
                kind=self._kind, pool=p,
            )  # fmt: skip
        return X, out.numpy()

    def _refuse_falkon_spread(self) -> None:
        if self.solver_ == "falkon":
            raise ValueError(
                message(
                    "solver",
                    "'exact' (or 'cg' without n_inducing) for return_std / return_cov",
                    "falkon",
                    "Falkon's Nystrom model has no posterior variance of the exact GP; refit "
                    "with solver='exact' (or raise exact_memory)",
                )
            )

    def _posterior_spread(self, X: np.ndarray, full: bool) -> np.ndarray:
        """Latent posterior variance (M,) or covariance (M, M) of the exact solver."""
        self._refuse_falkon_spread()
        if self.factor_ is None:
            raise ValueError(
                message(
                    "solver",
                    "'exact' for return_std / return_cov",
                    self.solver_,
                    "The CG solvers do not factorise the kernel; refit with solver='exact'",
                )
            )
        spec = self._network()
        x = torch.from_numpy(np.array(X, dtype=np.float64, order="C"))
        state = spec.kernel(x, torch.from_numpy(self.centres_))
        v = self.factor_.solve_lower(np.ascontiguousarray(getattr(state, self._kind).numpy().T))
        if full:
            k_ss = getattr(spec.kernel(x), self._kind).numpy()
            return k_ss - v.T @ v
        diag = np.concatenate(
            [
                np.diagonal(getattr(spec.kernel(x[i : i + 256]), self._kind).numpy())
                for i in range(0, len(x), 256)
            ]
        )
        return np.maximum(diag - (v * v).sum(0), 0.0)
