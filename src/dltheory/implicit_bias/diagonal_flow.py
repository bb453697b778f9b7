"""Gradient flow of diagonal linear networks, integrated to convergence.

beta = theta_+^2 - theta_-^2 trained by gradient flow on 1/2 |X beta - y|^2 from
theta_+ = theta_- = alpha theta_0 (Woodworth et al. 2020). The flow is an ODE
solve (scipy Radau), independent of the dual Newton solve of
:func:`~dltheory.implicit_bias.diagonal.q_alpha_argmin`, whose argmin is its
limit (derivation in :mod:`.diagonal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .._checks import as_float_array, check_int, message
from .diagonal import _check_rtol, _problem

__all__ = ["DiagonalFlow", "diagonal_flow", "diagonal_flow_limit"]


@dataclass(frozen=True)
class DiagonalFlow:
    """A gradient-flow trajectory of a diagonal linear network.

    Attributes:
        times: (T,) times t.
        beta: (T, d) predictors theta_+^2 - theta_-^2 at those times.
        loss: (T,) losses 1/2 |X beta - y|^2.
    """

    times: torch.Tensor
    beta: torch.Tensor
    loss: torch.Tensor


def _flow_rhs(X: np.ndarray, y: np.ndarray, d: int):
    """The flow in the rotated coordinates p = theta_+ - theta_-, m = theta_+ + theta_-.

    beta = p * m, dp/dt = -2 g * m, dm/dt = -2 g * p with g = X^T (X beta - y):
    a linear change of variables of the gradient flow that keeps beta = p * m
    free of the cancellation theta_+^2 - theta_-^2 suffers at large alpha.
    """
    gram = X.T @ X

    def rhs(_t: float, state: np.ndarray) -> np.ndarray:
        p, m = state[:d], state[d:]
        g = X.T @ (X @ (p * m) - y)
        return np.concatenate([-2.0 * g * m, -2.0 * g * p])

    def jac(_t: float, state: np.ndarray) -> np.ndarray:
        p, m = state[:d], state[d:]
        g = np.diag(X.T @ (X @ (p * m) - y))
        return -2.0 * np.block(
            [
                [m[:, None] * gram * m[None, :], g + m[:, None] * gram * p[None, :]],
                [g + p[:, None] * gram * m[None, :], p[:, None] * gram * p[None, :]],
            ]
        )

    return rhs, jac


def _start(alpha: float, shape: np.ndarray, X: np.ndarray, y: np.ndarray, rtol: float) -> tuple:
    """Initial (p, m) = (0, 2 alpha theta_0) and per-coordinate absolute tolerances."""
    d = shape.size
    scale = np.abs(shape) * alpha
    w = shape**2
    beta_l2 = w * (X.T @ np.linalg.solve((X * w) @ X.T, y))  # a scale for beta
    b = max(float(np.abs(beta_l2).max()), 1e-300)
    atol = rtol * np.minimum(scale, b / scale)
    return np.concatenate([np.zeros(d), 2.0 * alpha * shape]), np.concatenate([atol, atol])


_FLOW_ALPHA = (1e-4, 1e4)
_FLOW_SCALE = 1e8


def _flow_problem(X: Any, y: Any, alpha: Any, theta0: Any) -> tuple:
    """The checks of :func:`q_alpha_argmin` plus the ranges the stiff integrator handles:
    1e-4 <= alpha <= 1e4 and entries of X, y, theta0 of magnitude <= 1e8."""
    X, y, alpha, shape = _problem(X, y, alpha, theta0)
    if not _FLOW_ALPHA[0] <= alpha <= _FLOW_ALPHA[1]:
        raise ValueError(
            message(
                "alpha",
                "in [1e-4, 1e4] for the integrated flow",
                alpha,
                "Use q_alpha_argmin for the limit at other scales",
            )
        )
    for name, value in (("X", X), ("y", y), ("theta0", shape)):
        if float(value.abs().max()) > _FLOW_SCALE:
            raise ValueError(
                message(
                    name,
                    "of entries with magnitude <= 1e8 for the integrated flow",
                    f"max |entry| = {float(value.abs().max()):.3g}",
                    "Rescale the problem",
                )
            )
    return X, y, alpha, shape


def _check_flow_rtol(rtol: Any) -> float:
    rtol = _check_rtol(rtol)
    if rtol < 1e-14:
        raise ValueError(
            message("rtol", "a float in [1e-14, 1) (float64 resolution)", rtol, "Try 1e-11")
        )
    return rtol


def diagonal_flow(
    X: Any, y: Any, alpha: float, times: Any, theta0: Any = None, *, rtol: float = 1e-11
) -> DiagonalFlow:
    """Gradient flow of the diagonal network on 1/2 |X beta - y|^2, at the given times.

    Integrates d theta_+/-/dt = -/+ 2 (X^T r) * theta_+/- (2d ODEs, the literal
    gradient flow, no closed form used; in the rotated coordinates
    p = theta_+ - theta_-, m = theta_+ + theta_-, beta = p m) with SciPy's Radau
    and an analytic Jacobian, from theta_+ = theta_- = alpha * theta_0.

    Args:
        X: (n, d) design; y: (n,) targets; alpha > 0; theta0: (d,) shape.
        times: increasing non-negative times (1-D).
        rtol: relative tolerance of the integrator (atol is rtol * alpha * |theta_0|).

    Returns:
        A :class:`DiagonalFlow`.
    """
    X, y, alpha, shape = _flow_problem(X, y, alpha, theta0)
    rtol = _check_flow_rtol(rtol)
    times_np = as_float_array("times", times, ndim=1)
    if (
        times_np.ndim != 1
        or times_np.size == 0
        or (np.diff(times_np) <= 0).any()
        or times_np[0] < 0
    ):
        raise ValueError(message("times", "a non-empty increasing 1-D array of times >= 0", times))
    d = X.shape[1]
    Xn, yn = X.numpy(), y.numpy()
    rhs, jac = _flow_rhs(Xn, yn, d)
    state, atol = _start(alpha, shape.numpy(), Xn, yn, rtol)
    sol = solve_ivp(
        rhs, (0.0, float(times_np[-1])), state, method="Radau", jac=jac,
        t_eval=times_np, rtol=rtol, atol=atol,
    )  # fmt: skip
    if not sol.success:
        raise ValueError(
            message(
                "times",
                "reachable by the stiff integrator",
                f"a failure before t = {float(times_np[-1]):g} ({sol.message})",
                "Use shorter times or a looser rtol",
            )
        )
    beta = sol.y[:d].T * sol.y[d:].T
    loss = 0.5 * ((beta @ Xn.T - yn) ** 2).sum(-1)
    return DiagonalFlow(torch.from_numpy(sol.t), torch.from_numpy(beta), torch.from_numpy(loss))


def diagonal_flow_limit(
    X: Any,
    y: Any,
    alpha: float,
    theta0: Any = None,
    *,
    rtol: float = 1e-11,
    max_doublings: int = 80,
) -> torch.Tensor:
    """The limit beta(infinity) of gradient flow on a diagonal linear network.

    Integrates the 2d-dimensional flow of :func:`diagonal_flow` (Radau, tight
    tolerances) over [0, T], doubling T until the residual is below
    1e-13 (1 + |y|_inf) and beta has stopped moving. Woodworth et al. (2020),
    Theorem 1, says the result equals :func:`q_alpha_argmin`; this function does
    not assume it.

    Args:
        X: (n, d) design with full row rank; y: (n,) targets.
        alpha: initialisation scale > 0 (theta_+ = theta_- = alpha theta_0).
        theta0: (d,) shape (default ones).
        rtol: integrator tolerance.
        max_doublings: cap on the number of horizon doublings.

    Returns:
        beta, a (d,) float64 tensor.

    >>> from dltheory.implicit_bias import q_alpha_argmin
    >>> X = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> beta = diagonal_flow_limit(X, [1.0], alpha=1.0)
    >>> bool((beta - q_alpha_argmin(X, [1.0], 1.0)).abs().max() < 1e-8)
    True
    """
    X, y, alpha, shape = _flow_problem(X, y, alpha, theta0)
    rtol = _check_flow_rtol(rtol)
    max_doublings = check_int("max_doublings", max_doublings, minimum=1)
    if max_doublings > 200:  # 2^200 initial time scales: far past any convergence
        raise ValueError(message("max_doublings", "an integer in [1, 200]", max_doublings))
    d = X.shape[1]
    Xn, yn = X.numpy(), y.numpy()
    rhs, jac = _flow_rhs(Xn, yn, d)
    state, atol = _start(alpha, shape.numpy(), Xn, yn, rtol)
    # The linearised time scale at init is 1 / (8 alpha^2 lambda_max(X W X^T)).
    lam = float(np.linalg.eigvalsh((Xn * shape.numpy() ** 2) @ Xn.T).max())
    t, horizon = 0.0, 1.0 / (8.0 * alpha**2 * lam)
    tol = 1e-13 * (1.0 + np.abs(yn).max())
    beta_old = None
    for _ in range(max_doublings):
        sol = solve_ivp(rhs, (t, t + horizon), state, method="Radau", jac=jac, rtol=rtol, atol=atol)
        if not sol.success:
            raise ValueError(
                message(
                    "X, y, alpha",
                    "a flow the stiff integrator can follow",
                    f"a failure at t = {t:g} ({sol.message})",
                    "Rescale X and y, or loosen rtol",
                )
            )
        t, state = t + horizon, sol.y[:, -1]
        beta = state[:d] * state[d:]
        residual = np.abs(Xn @ beta - yn).max()
        if residual <= tol and beta_old is not None and np.abs(beta - beta_old).max() <= tol:
            return torch.from_numpy(beta)
        beta_old, horizon = beta, 2.0 * horizon
    raise ValueError(
        message(
            "max_doublings",
            "enough horizon doublings for the flow to converge",
            max_doublings,
            f"The residual is still {residual:.3g}; raise max_doublings",
        )
    )
