"""Diagonal linear networks and the Q_alpha potential: from the rich (L1) to the kernel (L2) regime.

The model is the linear predictor x -> <beta, x> with the "diagonal network"
parametrisation beta = theta_+^2 - theta_-^2 (elementwise), trained by gradient
flow on L = 1/2 |X beta - y|^2 from theta_+ = theta_- = alpha * theta_0 (so
beta(0) = 0). Woodworth et al. (2020), "Kernel and rich regimes in
overparametrized models", Theorem 1 (shape theta_0 as in their Sec. 4).

Derivation (stated here because the constants matter). With r = X beta - y,
d theta_+/dt = -2 (X^T r) * theta_+ and d theta_-/dt = +2 (X^T r) * theta_-, so
theta_+/-(t) = alpha theta_0 exp(-/+ 2 X^T s(t)) with s(t) = int_0^t r, and

    beta(t) = alpha^2 theta_0^2 (e^{-4 X^T s} - e^{4 X^T s}) = 2 alpha^2 theta_0^2 sinh(X^T nu),

nu = -4 s(t). A limit that interpolates (X beta = y) with beta = 2 alpha^2
theta_0^2 sinh(X^T nu) is exactly the KKT point of

    argmin Q(beta)  subject to  X beta = y,
    Q(beta) = sum_i alpha^2 theta_0i^2 q(beta_i / (alpha^2 theta_0i^2)),
    q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z / 2),

because q'(z) = arcsinh(z / 2), i.e. grad Q(beta)_i = arcsinh(beta_i / (2 alpha^2
theta_0i^2)) inverts the link. Some lecture notes write the link as
alpha^2 theta_0^2 sinh (dropping the 2); the 2 is what puts z / 2 inside q.
The factor 4 in the exponent comes from the loss 1/2 |X beta - y|^2 (a loss
normalised by 1/N rescales nu only) and does not change the argmin.

The gradient flow itself is integrated in :mod:`.diagonal_flow`.

Limits: Q(beta) / log(1 / alpha^2) -> |beta|_1 as alpha -> 0 (the
statement "Q -> |beta|_1" needs this normalisation), and alpha^2 Q(beta) ->
1/4 sum_i beta_i^2 / theta_0i^2 as alpha -> infinity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog

from .._checks import Plain, as_float_tensor, check_finite_result, check_positive, message
from ._validate import design, shape_vector, targets

__all__ = [
    "min_l1_interpolant",
    "min_weighted_l2_interpolant",
    "q_alpha_argmin",
    "q_function",
    "q_potential",
]


def q_function(z: Any) -> torch.Tensor:
    """q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z / 2), the per-coordinate potential.

    Woodworth et al. (2020), Theorem 1. q(0) = 0, q'(z) = arcsinh(z / 2),
    q(z) ~ z^2 / 4 near 0 and |z| log|z| at infinity.

    >>> float(q_function(0.0)), round(float(q_function(1e-4) / 1e-8), 6)
    (0.0, 0.25)
    """
    z = as_float_tensor("z", z, dtype=torch.float64, allow_empty=True)
    if z.numel() and float(z.abs().max()) > 1e150:  # z^2 would overflow
        raise ValueError(
            message(
                "z",
                "of magnitude <= 1e150 (z^2 must be a float64)",
                Plain(f"max |z| {float(z.abs().max()):g}"),
            )
        )
    # 2 - sqrt(4 + z^2) = -z^2 / (2 + sqrt(4 + z^2)): no cancellation at small z.
    return z * torch.asinh(z / 2.0) - z * z / (2.0 + torch.sqrt(4.0 + z * z))


def q_potential(beta: Any, alpha: float, theta0: Any = None) -> torch.Tensor:
    """Q_{alpha, theta_0}(beta) = sum_i alpha^2 theta_0i^2 q(beta_i / (alpha^2 theta_0i^2)).

    Args:
        beta: (d,) linear predictor.
        alpha: initialisation scale, > 0.
        theta0: (d,) initialisation shape (default ones).

    Returns:
        A float64 scalar tensor (a batch (...,) for beta of shape (..., d)). Evaluated
        from log alpha and log|beta_i|, so it stays finite for any float alpha.

    >>> beta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> big = 1e4**2 * float(q_potential(beta, 1e4))  # alpha^2 Q -> |beta|^2 / 4
    >>> round(big, 6)
    1.25
    """
    alpha = check_positive("alpha", alpha)
    beta = as_float_tensor("beta", beta, dtype=torch.float64, detach=True)
    if beta.ndim == 0:
        raise ValueError(message("beta", "a 1-D array (d,) or a batch (..., d)", "a 0-d scalar"))
    log_c = math.log(alpha) + torch.log(shape_vector(theta0, beta.shape[-1]).abs())
    log_c = 2.0 * log_c  # log(alpha^2 theta_0^2), finite for any float alpha
    # c q(b / c) = |b| (asinh(|z| / 2) - |z| / (2 + sqrt(4 + z^2))), z = b / c, from log|z|.
    a = beta.abs()
    log_z = torch.log(a) - log_c
    z = torch.exp(log_z.clamp(max=0.0))  # |z| where |z| <= 1
    u = torch.exp((-log_z).clamp(max=0.0))  # 1 / |z| where |z| >= 1
    small = log_z <= 0.0
    asinh = torch.where(
        log_z > 40.0, log_z, torch.asinh(0.5 * torch.exp(log_z.clamp(max=40.0)))
    )  # asinh(|z| / 2) = log|z| + O(1 / z^2) for huge |z|
    ratio = torch.where(
        small, z / (2.0 + torch.sqrt(4.0 + z * z)), 1.0 / (2.0 * u + torch.sqrt(4.0 * u * u + 1.0))
    )
    return torch.where(a > 0, a * (asinh - ratio), torch.zeros_like(a)).sum(-1)


def _check_rtol(rtol: Any) -> float:
    rtol = check_positive("rtol", rtol)
    if rtol >= 1.0:
        raise ValueError(message("rtol", "a float in (0, 1)", rtol, "Try the default 1e-11"))
    return rtol


def _problem(X: Any, y: Any, alpha: float, theta0: Any) -> tuple:
    X = design("X", X)
    y = targets("y", y, X.shape[0])
    alpha = check_positive("alpha", alpha)
    shape = shape_vector(theta0, X.shape[1])
    _check_full_row_rank(X)
    return X, y, alpha, shape


def _check_full_row_rank(X: torch.Tensor) -> None:
    n, d = X.shape
    if n > d or int(torch.linalg.matrix_rank(X)) < n:
        raise ValueError(
            message(
                "X",
                "of full row rank (n_samples <= n_features, independent rows)",
                f"shape {(n, d)}, rank {int(torch.linalg.matrix_rank(X))}",
                "The implicit-bias problem needs X beta = y to have many solutions",
            )
        )


def q_alpha_argmin(X: Any, y: Any, alpha: float, theta0: Any = None) -> torch.Tensor:
    """argmin Q_{alpha, theta_0}(beta) subject to X beta = y, to machine precision.

    Solves the smooth, strictly convex dual (n variables) by damped Newton:

        min_nu  Phi(nu) = sum_i 2 alpha^2 theta_0i^2 cosh((X^T nu)_i) - nu . y,

    whose stationarity X beta(nu) = y with beta(nu) = 2 alpha^2 theta_0^2
    sinh(X^T nu) is the KKT system of the primal (see the module docstring).
    Iterates on u = X^T nu with exponentials evaluated as
    exp(+-u + log 2 + 2 log alpha + log theta_0^2) and weights scaled by their
    maximum, so tiny alpha (1e-200) stays finite; when |u| < 1e-9 (huge alpha)
    the weighted-L2 interpolant is returned, exact there to rounding. Steps are
    accepted by an Armijo test on a cancellation-free form of the decrease of
    Phi, and the iteration runs until |X beta - y|_inf is at the rounding level
    of its evaluation (ill-conditioned X included).

    Raises:
        RuntimeError: if the residual stalls above ~1e-12 of its scale.

    Args:
        X: (n, d) design with full row rank (n <= d).
        y: (n,) targets.
        alpha: scale > 0.
        theta0: (d,) shape, nonzero (default ones).

    Returns:
        beta, a (d,) float64 tensor.

    >>> X = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    >>> [round(b, 12) for b in q_alpha_argmin(X, [2.0], alpha=1.0).tolist()]  # symmetric
    [1.0, 1.0]
    """
    X, y, alpha, shape = _problem(X, y, alpha, theta0)
    return torch.from_numpy(_dual_newton(X.numpy(), y.numpy(), alpha, shape.numpy()))


def _log_sinh(x: np.ndarray) -> np.ndarray:
    """log sinh(x) for x >= 0 (-inf at 0), without overflow."""
    with np.errstate(divide="ignore"):
        return x + np.log(-np.expm1(-2.0 * x)) - math.log(2.0)


def _dual_newton(X: np.ndarray, y: np.ndarray, alpha: float, shape: np.ndarray) -> np.ndarray:
    """Damped Newton on Phi, iterating on u = X^T nu; see :func:`q_alpha_argmin`.

    Each step solves the Newton system (X W X^T) s = -g, g = X beta - y,
    W = c cosh(u), by least squares on A = X W^{1/2} (v = lstsq(A, -g),
    du = W^{-1/2} v = X^T s), so its accuracy follows cond(A), not cond(A)^2,
    and u is updated directly (nu, which can be huge with cancelling entries,
    is never formed). The decrease of Phi along du is evaluated free of
    cancellation,

        Phi(u + t du) - Phi(u) = sum_i [w_i 2 sinh(h_i / 2)^2 + beta_i (sinh h_i - h_i)] - t |v|^2,

    h = t du, and steps are accepted by Armijo on it (the Newton decrement |v|^2
    sets the slope). Weights are scaled by their maximum (kept as a logarithm),
    so tiny alpha, where every w underflows, works too. Iterates until
    |X beta - y|_inf is at rounding level, 16 eps max_i(|y_i| + (|X| |beta|)_i).
    """
    log_c = math.log(2.0) + 2.0 * math.log(alpha) + 2.0 * np.log(np.abs(shape))
    root_w = np.abs(shape)
    beta_l2 = root_w * np.linalg.lstsq(X * root_w, y, rcond=None)[0]  # min weighted-L2
    with np.errstate(divide="ignore"):
        if (np.log(np.abs(beta_l2)) - log_c).max() < math.log(1e-9):
            # beta = c sinh(u) = c u (1 + O(u^2)) with |u| < 1e-9: the weighted-L2 interpolant
            # is exact to rounding (and u may not even be representable at huge alpha).
            return beta_l2
    u = np.zeros(X.shape[1])
    radius = 4.0
    eps = np.finfo(float).eps

    def state(u: np.ndarray) -> tuple:
        a = np.abs(u)
        log_w = log_c + a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)  # log(c cosh u)
        with np.errstate(divide="ignore"):
            log_b = log_c + _log_sinh(a)  # log|c sinh u|
        return log_w, log_b, np.sign(u) * np.exp(log_b)

    log_w, log_b, beta = state(u)
    best = (math.inf, beta)
    polish = 0
    for _ in range(20_000):
        g = X @ beta - y
        res = float(np.abs(g).max())
        # rounding level of X beta - y (beta = c sinh u carries relative error ~ eps |u|)
        floor = 16.0 * eps * float((np.abs(y) + np.abs(X) @ (np.abs(beta) * (1 + np.abs(u)))).max())
        if res < best[0]:
            best = (res, beta)
        if res <= floor:  # at rounding level: a few more full steps, keep the best
            polish += 1
            if polish > 3 or res == 0.0:
                return best[1]
        top = float(log_w.max())
        root = np.exp(0.5 * (log_w - top))  # sqrt(w / kappa), kappa = max w
        wk = np.exp(log_w - top)  # w / kappa
        bk = np.sign(u) * np.exp(log_b - top)  # beta / kappa
        # Far from the optimum: the Newton step from the normal equations (any descent
        # direction will do; the trust region caps it, also along near-null directions).
        try:
            s_ne = np.linalg.solve((X * wk) @ X.T, -g)  # kappa * s
        except np.linalg.LinAlgError:
            s_ne = np.linalg.lstsq((X * wk) @ X.T, -g, rcond=1e-300)[0]
        direction = X.T @ s_ne  # kappa * du
        lam2 = -float(g @ s_ne)  # kappa * Newton decrement^2
        size = float(np.abs(direction).max())
        far = math.isfinite(size) and size > 0.0 and lam2 > 0.0
        if not far or math.log(size) <= math.log(radius) + top:
            # Near it (full step inside the trust region): the accurate step, least squares on
            # A = X W^{1/2}, v / root where w is not negligible, X^T s with A^T s = v elsewhere.
            A = X * root
            v = np.linalg.lstsq(A, -g, rcond=None)[0]  # sqrt(kappa) * v_true
            big = root > 1e-6
            direction = np.where(big, v / np.where(big, root, 1.0), 0.0)
            if not big.all():
                direction[~big] = X[:, ~big].T @ np.linalg.lstsq(A.T, v, rcond=None)[0]
            lam2 = float(v @ v)
            size = float(np.abs(direction).max())
        if not math.isfinite(size) or size == 0.0 or lam2 <= 0.0:
            break
        # full Newton step du = direction / kappa, capped at |du| <= radius
        log_tau = min(-top, math.log(radius / size))
        unit = direction / size
        length = math.exp(log_tau + math.log(size))  # max |du| of the full step
        t, accepted = 1.0, False
        while t > 1e-12:
            h = (t * length) * unit
            curv = float((wk * 2.0 * np.sinh(0.5 * h) ** 2 + bk * (np.sinh(h) - h)).sum())
            # Armijo: Delta Phi = kappa curv - t tau lam2 <= -t tau lam2 / 4, in logs
            if curv <= 0.0 or math.log(curv) <= math.log(0.75 * t * lam2) + log_tau - top:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        u = u + (t * length) * unit
        log_w, log_b, beta = state(u)
    g = X @ beta - y
    if float(np.abs(g).max()) < best[0]:
        best = (float(np.abs(g).max()), beta)
    scale = float((np.abs(y) + np.abs(X) @ np.abs(best[1])).max())
    if best[0] <= 1e-12 * scale:  # stalled within a few hundred eps of rounding level
        return best[1]
    raise RuntimeError(
        f"q_alpha_argmin: Newton stalled at residual |X beta - y|_inf = {best[0]:.3g} "
        f"(scale {scale:.3g}); X is too ill-conditioned for float64 at alpha = {alpha:g}"
    )


def min_l1_interpolant(X: Any, y: Any) -> torch.Tensor:
    """argmin |beta|_1 subject to X beta = y, by linear programming (SciPy HiGHS).

    beta = u - v with u, v >= 0 and min sum(u + v); the alpha -> 0 limit of
    :func:`q_alpha_argmin` when this minimiser is unique.

    >>> min_l1_interpolant([[1.0, 2.0]], [2.0]).tolist()
    [0.0, 1.0]
    """
    X = design("X", X)
    y = targets("y", y, X.shape[0])
    Xn, d = X.numpy(), X.shape[1]
    res = linprog(
        np.ones(2 * d), A_eq=np.hstack([Xn, -Xn]), b_eq=y.numpy(), bounds=(0, None),
        method="highs", options={"primal_feasibility_tolerance": 1e-10},
    )  # fmt: skip
    if res.status != 0:
        raise ValueError(message("X, y", "a consistent system X beta = y", res.message))
    return torch.from_numpy(res.x[:d] - res.x[d:])


def min_weighted_l2_interpolant(X: Any, y: Any, theta0: Any = None) -> torch.Tensor:
    """argmin sum_i beta_i^2 / theta_0i^2 subject to X beta = y: W X^T (X W X^T)^{-1} y.

    W = diag(theta_0^2); the alpha -> infinity limit of :func:`q_alpha_argmin`
    (alpha^2 Q -> 1/4 sum beta_i^2 / theta_0i^2).

    >>> min_weighted_l2_interpolant([[1.0, 1.0]], [2.0]).tolist()
    [1.0, 1.0]
    """
    X = design("X", X)
    y = targets("y", y, X.shape[0])
    w = shape_vector(theta0, X.shape[1]) ** 2
    _check_full_row_rank(X)
    gram = (X * w) @ X.T
    check_finite_result("X, theta0", gram)
    out = w * (X.T @ torch.linalg.solve(gram, y))
    check_finite_result("X, y, theta0", out)
    return out
