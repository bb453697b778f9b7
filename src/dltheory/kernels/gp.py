"""Exact Gaussian-process inference with an NNGP (or any) kernel.

Posterior (Rasmussen & Williams 2006, Alg. 2.1): with K_y = K + sigma^2 I = L L^T,
mean = K_*n K_y^-1 y, cov = K_** - V^T V with V = L^-1 K_n*, and
log p(y) = -y^T K_y^-1 y / 2 - sum log L_ii - N log(2 pi) / 2 per output column.
The evidence gradient is tr((a a^T - K_y^-1) dK/dtheta) / 2 (their Eq. 5.9).
For an infinite network, K is the NNGP of ``MLP(depth, activation, c_w, c_b)``
(Lee et al. 2018); :func:`maximize_evidence` fits (c_w, c_b, noise) for each depth.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import scipy.optimize
import torch

from .._checks import as_float_tensor, check_int, check_nonnegative, check_positive, message
from ..spec.mlp import MLP
from .cholesky import as_fortran_copy, cholesky_in_place
from .solvers import _scale_targets, _scaled_evidence, _unscale

__all__ = [
    "EvidenceFit",
    "GPPosterior",
    "gp_posterior",
    "log_marginal_likelihood",
    "maximize_evidence",
]

_BELOW_RANGE = (
    "-inf log evidence when it lies below float64's range (targets near the float limit); "
    "the posterior mean stays right"
)
__fuzz_exempt__ = {
    "gp_posterior:inf": _BELOW_RANGE,
    "log_marginal_likelihood:inf": _BELOW_RANGE,
}

_FD_STEP = 1e-5  # relative step of the central differences dK/dlog(c) (error ~ step^2)


class GPPosterior(NamedTuple):
    """Posterior of a GP at test inputs.

    Attributes:
        mean: (M,) or (M, k) posterior mean (one column per output).
        var: (M,) posterior variance (shared by the outputs), if the test diagonal was given.
        cov: (M, M) posterior covariance, if the full test block was given.
        log_marginal_likelihood: log p(y | X), summed over the output columns.
        jitter: diagonal jitter the Cholesky needed (0 when K + noise I was fine).
    """

    mean: np.ndarray
    var: np.ndarray | None
    cov: np.ndarray | None
    log_marginal_likelihood: float
    jitter: float


def _as_numpy(name: str, value: Any, ndim: int | tuple[int, ...]) -> np.ndarray:
    t = as_float_tensor(name, value, dtype=torch.float64).detach()
    if t.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(message(name, f"a {ndim}-D array", f"shape {tuple(t.shape)}"))
    return t.numpy()


def _targets(y: Any, n: int) -> tuple[np.ndarray, bool]:
    y = _as_numpy("y_train", y, (1, 2))
    if len(y) != n:
        raise ValueError(message("y_train", f"of length {n} like k_train_train", y.shape))
    return y.reshape(n, -1), y.ndim == 1


def gp_posterior(
    k_train_train: Any,
    k_test_train: Any,
    y_train: Any,
    *,
    k_test_test: Any = None,
    noise: float = 0.0,
) -> GPPosterior:
    """GP posterior mean (and variance / covariance) at test points, exactly.

    Args:
        k_train_train: (N, N) prior covariance of the training outputs.
        k_test_train: (M, N) covariance of test and training outputs.
        y_train: (N,) or (N, k) observed targets.
        k_test_test: None, the (M,) prior variances (gives ``var``) or the (M, M)
            prior covariance (gives ``var`` and ``cov``).
        noise: observation-noise variance sigma^2 (>= 0).

    y is divided by a power of two near max |y| before the solve (exact; the mean is
    linear in y), so targets near float64's range give the right mean; a mean that
    itself overflows float64 raises ValueError, an evidence below float64's range is -inf.

    >>> import numpy as np
    >>> post = gp_posterior([[1.0]], [[0.5]], [2.0], k_test_test=[1.0], noise=1.0)
    >>> round(float(post.mean[0]), 12), round(float(post.var[0]), 12)  # 0.5*2/2, 1 - 0.25/2
    (0.5, 0.875)
    """
    k = _as_numpy("k_train_train", k_train_train, 2)
    n = len(k)
    if k.shape != (n, n):
        raise ValueError(message("k_train_train", "a square matrix", k.shape))
    k_sn = _as_numpy("k_test_train", k_test_train, 2)
    if k_sn.shape[1] != n:
        raise ValueError(message("k_test_train", f"of shape (M, {n})", k_sn.shape))
    y, flat = _targets(y_train, n)
    noise = check_nonnegative("noise", noise)
    y, scale = _scale_targets(y)  # the mean is linear in y: solve with y / scale
    chol = cholesky_in_place(as_fortran_copy(k), shift=noise)
    alpha = chol.solve(y)
    mean = _unscale(k_sn @ alpha, scale)
    lml = _scaled_evidence(y, alpha, chol.logdet(), scale)
    var = cov = None
    if k_test_test is not None:
        k_ss = _as_numpy("k_test_test", k_test_test, (1, 2))
        m = len(k_sn)
        if k_ss.shape not in ((m,), (m, m)):
            raise ValueError(message("k_test_test", f"of shape ({m},) or ({m}, {m})", k_ss.shape))
        v = chol.solve_lower(np.ascontiguousarray(k_sn.T))
        if k_ss.ndim == 2:
            cov = k_ss - v.T @ v
            var = np.diagonal(cov).copy()
        else:
            var = k_ss - (v * v).sum(0)
    return GPPosterior(mean[:, 0] if flat else mean, var, cov, lml, chol.jitter)


def _evidence(y: np.ndarray, alpha: np.ndarray, logdet: float) -> float:
    n, k = y.shape
    return float(-0.5 * (y * alpha).sum() - 0.5 * k * logdet - 0.5 * k * n * math.log(2 * math.pi))


def log_marginal_likelihood(k_train_train: Any, y_train: Any, *, noise: float = 0.0) -> float:
    """log p(y | X) = -y^T K_y^-1 y / 2 - log det K_y / 2 - N log(2 pi) / 2 (per column, summed).

    -inf when the evidence lies below float64's range (targets near the float limit).

    >>> import math
    >>> round(log_marginal_likelihood([[1.0]], [0.0], noise=1.0) + 0.5 * math.log(4 * math.pi), 12)
    0.0
    """
    k = _as_numpy("k_train_train", k_train_train, 2)
    if k.shape != (len(k), len(k)):
        raise ValueError(message("k_train_train", "a square matrix", k.shape))
    y, _ = _targets(y_train, len(k))
    y, scale = _scale_targets(y)  # y^T K_y^-1 y = scale^2 (y / scale)^T K_y^-1 (y / scale)
    chol = cholesky_in_place(as_fortran_copy(k), shift=check_nonnegative("noise", noise))
    return _scaled_evidence(y, chol.solve(y), chol.logdet(), scale)


class EvidenceFit(NamedTuple):
    """Hyperparameters that maximise the GP evidence of an MLP's NNGP.

    Attributes:
        depth, c_w, c_b, noise: the best depth and its fitted (c_w, c_b, sigma^2).
        log_marginal_likelihood: log p(y | X) there.
        gradient: d log p / d (log c_w, log c_b, log noise) there (~0 at an interior optimum).
        by_depth: {depth: (c_w, c_b, noise, log p)} for every depth tried.
    """

    depth: int
    c_w: float
    c_b: float
    noise: float
    log_marginal_likelihood: float
    gradient: tuple[float, float, float]
    by_depth: dict[int, tuple[float, float, float, float]]


def _nngp(x, depth, activation, c_w, c_b) -> np.ndarray:
    return MLP(depth, activation, c_w=c_w, c_b=c_b).kernel(x).nngp.numpy()


def _value_and_grad(log_params, x, y, depth, activation):
    c_w, c_b, noise = np.exp(log_params)
    k = _nngp(x, depth, activation, c_w, c_b)
    chol = cholesky_in_place(as_fortran_copy(k), shift=noise)
    alpha = chol.solve(y)
    value = _evidence(y, alpha, chol.logdet())
    # 0.5 tr((a a^T - k K_y^-1) dK) with k output columns sharing K_y.
    w = alpha @ alpha.T - y.shape[1] * chol.solve(np.eye(len(y)))
    grads = []
    for i, c in enumerate((c_w, c_b)):
        h = _FD_STEP * max(c, 1e-3)
        up, down = [c_w, c_b], [c_w, c_b]
        up[i], down[i] = c + h, max(c - h, 0.0)
        dk = (_nngp(x, depth, activation, *up) - _nngp(x, depth, activation, *down)) / (
            up[i] - down[i]
        )
        grads.append(0.5 * float((w * dk).sum()) * c)
    grads.append(0.5 * float(np.trace(w)) * noise)
    return value, np.array(grads)


def maximize_evidence(
    x: Any,
    y: Any,
    *,
    activation: str = "relu",
    depths: tuple[int, ...] = (1, 2, 3),
    c_w: float = 1.0,
    c_b: float = 0.1,
    noise: float = 0.1,
    max_iter: int = 50,
) -> EvidenceFit:
    """Maximise log p(y | X) of the NNGP over (c_w, c_b, noise) for each depth; keep the best.

    L-BFGS-B on (log c_w, log c_b, log noise) with the gradient of Rasmussen &
    Williams Eq. 5.9; dK/dc_w and dK/dc_b by central differences of the exact
    kernel (relative step 1e-5, so the gradient is accurate to ~1e-10 relative),
    d K_y / d noise = I exactly. Depth is discrete: every depth in ``depths`` is fitted.

    Args:
        x: (N, n_0) inputs; y: (N,) or (N, k) targets.
        activation: a registered activation name.
        depths: hidden-layer counts to try.
        c_w, c_b, noise: starting values (> 0).
        max_iter: L-BFGS-B iterations per depth.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((30, 3)); y = np.sin(x[:, 0])
    >>> fit = maximize_evidence(x, y, depths=(1, 2), max_iter=20)
    >>> fit.depth in (1, 2) and fit.noise > 0
    True
    """
    xt = as_float_tensor("x", x, ndim=2, dtype=torch.float64).detach()
    y, _ = _targets(y, len(xt))
    biggest = float(np.abs(y).max())
    if biggest > 1e150:  # y^T K^-1 y and its gradient overflow: nothing could be learned
        raise ValueError(
            message("y", "targets of magnitude <= 1e150", biggest, "Standardise y first")
        )
    if not depths:
        raise ValueError(message("depths", "a non-empty tuple of depths", depths))
    depths = tuple(check_int("depths", d, minimum=1) for d in depths)
    start = np.log(
        [check_positive(n, v) for n, v in (("c_w", c_w), ("c_b", c_b), ("noise", noise))]
    )
    max_iter = check_int("max_iter", max_iter, minimum=1)
    by_depth, best = {}, None
    for depth in depths:

        def objective(p, depth=depth):
            value, grad = _value_and_grad(p, xt, y, depth, activation)
            return -value, -grad

        res = scipy.optimize.minimize(
            objective, start, jac=True, method="L-BFGS-B",
            bounds=[(-9.0, 5.0)] * 3, options={"maxiter": max_iter},
        )  # fmt: skip
        params = np.exp(res.x)
        by_depth[depth] = (*map(float, params), float(-res.fun))
        if best is None or -res.fun > best[1]:
            best = (depth, float(-res.fun), res.x)
    depth, lml, p = best
    _, grad = _value_and_grad(p, xt, y, depth, activation)
    c_w, c_b, noise = map(float, np.exp(p))
    return EvidenceFit(depth, c_w, c_b, noise, lml, tuple(map(float, grad)), by_depth)
