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

``backend="dask"`` runs the matrix-free block products (and predictions) on
Dask workers through :func:`dltheory.parallel.pool`.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._checks import message
from ..kernels.gram import kernel_product
from ..kernels.solvers import KernelRidgeFit, fit_exact, fit_falkon, fit_pcg
from ..parallel import pool
from ..spec.layers import Serial
from ..spec.mlp import MLP

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate
except ImportError:  # pragma: no cover - older scikit-learn

    def _sk_validate(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


__all__ = ["InfiniteNetworkEstimator", "validate_data"]

validate_data = _sk_validate
DEFAULT_EXACT_MEMORY = 4 << 30  # bytes: "auto" factorises Grams up to this size


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

    # ----------------------------------------------------------- hyperparameters
    def _check_params(self) -> None:
        _param(self, "depth", "an integer >= 1", _is_int(self.depth) and self.depth >= 1)
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
        if self.solver == "cg" or (self.solver == "auto" and self.n_inducing is not None):
            _param(self, "alpha", "> 0 for the CG solvers", self.alpha > 0)
        _param(
            self,
            "spec",
            "None or a dltheory Serial/MLP spec",
            self.spec is None or isinstance(self.spec, Serial),
        )

    def _network(self) -> Serial:
        """The spec: ``self.spec`` if given, else ``MLP(depth, activation, c_w, c_b, ...)``."""
        if self.spec is not None:
            return self.spec
        return MLP(
            self.depth,
            self.activation,
            c_w=self.c_w,
            c_b=self.c_b,
            width=self.width,
            parametrization=self.parametrization,
        )

    def _pool(self):
        """A context yielding ``None`` (serial: the process's threads) or a Dask pool."""
        if self.backend == "serial":
            return contextlib.nullcontext(None)
        return pool("dask", address=self.address, n_workers=self.n_workers)

    # ----------------------------------------------------------------- fitting
    def _fit_targets(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Solve for the coefficients of K(., centres) @ dual_coef_ on (N, k) targets Y."""
        spec = self._network()
        n = len(X)
        solver = self.solver
        if solver == "auto":
            solver = "exact" if 8 * n * n <= self.exact_memory else "cg"
        seed = 0 if self.random_state is None else int(np.random.default_rng(
            self.random_state if _is_int(self.random_state) else None
        ).integers(2**31))  # fmt: skip
        x = torch.from_numpy(np.array(X, dtype=np.float64, order="C"))  # writable copy
        y = np.ascontiguousarray(Y, dtype=np.float64)
        with self._pool() as p:
            if solver == "exact":
                fit = fit_exact(spec, x, y, kind=self._kind, ridge=self.alpha)
            elif self.n_inducing is None and self.solver == "cg":
                fit = fit_pcg(spec, x, y, kind=self._kind, ridge=self.alpha, tol=self.tol,
                              max_iter=self.max_iter, seed=seed, pool=p)  # fmt: skip
            else:
                m = self.n_inducing or min(n, math.ceil(4 * math.sqrt(n) * math.log(n + 1)))
                fit = fit_falkon(spec, x, y, kind=self._kind, ridge=self.alpha, n_inducing=m,
                                 tol=self.tol, max_iter=self.max_iter, seed=seed,
                                 pool=p)  # fmt: skip
        self._store(fit, solver if self.n_inducing is None or solver == "exact" else "falkon")

    def _store(self, fit: KernelRidgeFit, solver: str) -> None:
        self.dual_coef_ = fit.alpha
        self.centres_ = fit.centres.numpy()
        self.jitter_ = fit.jitter
        self.solver_ = "pcg" if solver == "cg" else solver
        self.n_iter_ = max(fit.iterations, 1)  # a direct solve counts as one iteration
        self.converged_ = fit.converged
        self.factor_ = fit.factor

    # -------------------------------------------------------------- prediction
    def _latent(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(validated X, (M, k) outputs K(X, centres_) @ dual_coef_)."""
        check_is_fitted(self, "dual_coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        spec = self._network()
        x = torch.from_numpy(np.array(X, dtype=np.float64, order="C"))
        with self._pool() as p:
            out = kernel_product(
                spec, x, torch.from_numpy(self.centres_), torch.from_numpy(self.dual_coef_),
                kind=self._kind, pool=p,
            )  # fmt: skip
        return X, out.numpy()

    def _posterior_spread(self, X: np.ndarray, full: bool) -> np.ndarray:
        """Latent posterior variance (M,) or covariance (M, M) of the exact solver."""
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
