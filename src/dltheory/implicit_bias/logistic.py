"""Gradient descent with logistic / exponential loss on separable data: the max-margin limit.

Soudry, Hoffer, Nacson, Gunasekar & Srebro (2018), "The implicit bias of
gradient descent on separable data" (Theorems 3 and 4). For
L(w) = sum_i l(y_i w . x_i) with l(u) = log(1 + e^{-u}) or e^{-u}
and a small enough step eta, GD from any w_0 satisfies

    w(t) = w_hat log t + w_tilde + o(1),   eta exp(-y_i x_i . w_tilde) = a_i on the support,

where w_hat = sum_i a_i y_i x_i is the hard-margin SVM (:mod:`.margin`). Hence
|w(t)| grows like |w_hat| log t = log t / gamma, and the angle to w_hat obeys

    cot angle(t) = (|w_hat| log t + u . w_tilde) / |P_perp w_tilde|   (u = w_hat / |w_hat|),

so the angle decays like |P_perp w_tilde| / (|w_hat| log t): the 1 / log t rate.
w_tilde is fixed on span(S), S the points on the margin, as the minimiser of a
strictly convex function (see :func:`soudry_asymptotics`; this also covers
|S| > d, where the dual a is not unique); its component outside span(S)
depends on the start and is not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linprog

from .._checks import as_float_tensor, check_choice, check_int, check_positive, message
from ._validate import design, labels_pm1
from .margin import max_margin

try:
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["GDTrajectory", "SoudryAsymptotics", "logistic_gd", "soudry_asymptotics"]

__fuzz_exempt__ = {
    "logistic_gd:nan": "angle is NaN at w = 0 (step 0 from w0 = None: no direction; documented)",
    "logistic_gd:cases": {"steps:1e12": "runs the 10^12 GD steps asked for (time linear in steps)"},
    "soudry_asymptotics:inf": "cot_slope is inf when w_tilde is parallel to w_hat (documented)",
}

_PARALLEL_RTOL = 1e-10  # |P_perp w_tilde| below this times |w_tilde| is rounding (w_tilde || w_hat)

Loss = Literal["logistic", "exponential"]


@dataclass(frozen=True)
class GDTrajectory:
    """GD on a separable data set, logged on a geometric grid of steps.

    Attributes:
        steps: (T,) step counts t (0 first).
        w: (T, d) weights w(t).
        loss: (T,) L(w(t)) = sum_i l(y_i w . x_i).
        norm: (T,) |w(t)|.
        angle: (T,) angle in radians between w(t) and w_hat (nan at w = 0).
        w_hat: (d,) the max-margin vector.
        loss_name: ``"logistic"`` or ``"exponential"``.
    """

    steps: torch.Tensor
    w: torch.Tensor
    loss: torch.Tensor
    norm: torch.Tensor
    angle: torch.Tensor
    w_hat: torch.Tensor
    loss_name: str


def _run(Z: np.ndarray, w: np.ndarray, eta: float, log_at: np.ndarray, exponential: bool):
    """GD w <- w + eta sum_i z_i (-l'(z_i . w)); returns the weights at log_at steps."""
    out = np.empty((log_at.size, w.size))
    j = 0
    t = 0
    n, d = Z.shape
    while j < log_at.size:
        if t == log_at[j]:
            out[j] = w
            j += 1
            continue
        grad = np.zeros(d)
        for i in range(n):
            m = 0.0
            for k in range(d):
                m += Z[i, k] * w[k]
            if exponential:
                s = math.exp(-m)
            elif m > 0:  # -l'(m) = 1 / (1 + e^m), evaluated without overflow
                e = math.exp(-m)
                s = e / (1.0 + e)
            else:
                s = 1.0 / (1.0 + math.exp(m))
            for k in range(d):
                grad[k] += s * Z[i, k]
        for k in range(d):
            w[k] += eta * grad[k]
        t += 1
    return out


if njit is not None:
    _run = njit(cache=True)(_run)


def _losses(margins: np.ndarray, exponential: bool) -> np.ndarray:
    return np.exp(-margins).sum(-1) if exponential else np.logaddexp(0.0, -margins).sum(-1)


def logistic_gd(
    X: Any,
    y: Any,
    eta: float,
    steps: int,
    *,
    loss: Loss = "logistic",
    w0: Any = None,
    n_log: int = 200,
) -> GDTrajectory:
    """Gradient descent w(t+1) = w(t) - eta grad L(w(t)), L(w) = sum_i l(y_i w . x_i).

    The loss is the sum over points, as in Soudry et al. (2018);
    convergence to the max-margin direction needs eta < 2 / (beta sigma_max(X)^2)
    with beta = 1/4 the smoothness of the logistic loss. The loop is compiled
    (numba) and logs w on ``n_log`` geometrically spaced steps, so 10^6 steps
    take well under a second on small data.

    Args:
        X: (n, d) inputs; y: (n,) labels in {-1, +1}, separable through the origin.
        eta: step size > 0.
        steps: number of GD steps (>= 1).
        loss: ``"logistic"`` (default) or ``"exponential"``.
        w0: (d,) start (default 0).
        n_log: number of logged steps (geometric grid from 1 to ``steps``, plus 0).

    Returns:
        A :class:`GDTrajectory`.

    Raises:
        ValueError: bad inputs, non-separable data, or a run whose weights overflow
            (a too-large eta, or the exponential loss started far on the wrong side).

    >>> X = torch.tensor([[1.0, 0.5], [1.0, -0.5]], dtype=torch.float64)
    >>> traj = logistic_gd(X, [1, 1], eta=0.5, steps=10_000, n_log=5)
    >>> traj.steps.tolist(), bool(traj.angle[-1] < 1e-9)  # symmetric data: w stays on w_hat
    ([0, 1, 10, 100, 1000, 10000], True)
    """
    X = design("X", X)
    y = labels_pm1("y", y, X.shape[0])
    eta = check_positive("eta", eta)
    steps = check_int("steps", steps, minimum=1)
    loss = check_choice("loss", loss, ("logistic", "exponential"))
    n_log = check_int("n_log", n_log, minimum=2)
    w_hat = max_margin(X, y).w.numpy()  # also checks separability
    if w0 is None:
        w = np.zeros(X.shape[1])
    else:
        w = as_float_tensor("w0", w0, ndim=1, dtype=torch.float64, detach=True).numpy().copy()
        if w.size != X.shape[1]:
            raise ValueError(message("w0", f"of length {X.shape[1]}", w.size))
    # at most `steps` distinct logged steps, whatever n_log asks for
    grid = np.unique(np.round(np.geomspace(1, steps, min(n_log, steps))).astype(np.int64))
    log_at = np.concatenate([[0], grid])
    Z = np.ascontiguousarray((y[:, None] * X).numpy())
    ws = _run(Z, w, eta, log_at, loss == "exponential")
    bad = ~np.isfinite(ws).all(1)
    if bad.any():
        raise ValueError(
            message(
                "eta, w0",
                "such that GD stays finite",
                f"non-finite weights by step {int(log_at[np.argmax(bad)])}",
                f"The {loss} loss overflowed: start nearer the separating side (w0=None) "
                "or lower eta below 2 / (beta sigma_max(X)^2)",
            )
        )
    unit = w_hat / np.linalg.norm(w_hat)
    along = ws @ unit
    across = np.linalg.norm(ws - along[:, None] * unit, axis=1)
    norm = np.linalg.norm(ws, axis=1)
    with np.errstate(invalid="ignore"):
        angle = np.where(norm > 0, np.arctan2(across, along), np.nan)
    return GDTrajectory(
        torch.from_numpy(log_at),
        torch.from_numpy(ws),
        torch.from_numpy(_losses(ws @ Z.T, loss == "exponential")),
        torch.from_numpy(norm),
        torch.from_numpy(angle),
        torch.from_numpy(w_hat),
        loss,
    )


@dataclass(frozen=True)
class SoudryAsymptotics:
    """The predicted late-time form w(t) = w_hat log t + w_tilde of GD.

    Attributes:
        w_hat: (d,) max-margin vector; |w(t)| / log t -> |w_hat| = 1 / margin.
        w_tilde: (d,) the offset, eta exp(-y_i x_i . w_tilde) = a_i on the support.
        norm_slope: |w_hat|, the slope of |w(t)| against log t.
        cot_slope: |w_hat| / |P_perp w_tilde|, the slope of cot angle(t) against log t
            (``inf`` when w_tilde is parallel to w_hat: the angle vanishes faster).
        cot_intercept: u . w_tilde / |P_perp w_tilde| (+-inf, the sign of u . w_tilde,
            when parallel).
        angle_coefficient: |P_perp w_tilde| / |w_hat|, so angle(t) ~ coefficient / log t
            (exactly 0 when parallel).
        determined: whether the support vectors span R^d (w_tilde fully predicted).
    """

    w_hat: torch.Tensor
    w_tilde: torch.Tensor
    norm_slope: float
    cot_slope: float
    cot_intercept: float
    angle_coefficient: float
    determined: bool


def _offset(Z: np.ndarray, w_hat: np.ndarray, eta: float, start: np.ndarray) -> np.ndarray:
    """argmin over span(Z rows) of F(w) = sum_i eta exp(-z_i . w) + w_hat . w, by damped Newton.

    F is strictly convex and coercive on span(S) when w_hat = sum_S a_i z_i with
    every a_i > 0; its stationarity condition sum_i eta exp(-z_i . w) z_i = w_hat is
    Soudry's system. Works in an orthonormal basis B of span(S) (w = B c).
    """
    _, sv, vt = np.linalg.svd(Z, full_matrices=False)
    basis = vt[sv > sv[0] * 1e-12].T  # (d, r)
    A = Z @ basis  # (|S|, r)
    target = basis.T @ w_hat
    log_eta = math.log(eta)

    def value(c: np.ndarray) -> float:
        with np.errstate(over="ignore"):
            return float(np.exp(log_eta - A @ c).sum() + target @ c)

    c = basis.T @ start
    scale = float(np.linalg.norm(target))
    for _ in range(200):
        e = np.exp(log_eta - A @ c)
        grad = target - A.T @ e
        if np.linalg.norm(grad) <= 1e-14 * scale:
            return basis @ c
        step = -np.linalg.solve((A.T * e) @ A, grad)
        decrement = -float(grad @ step)  # Newton decrement squared
        if decrement <= 1e-30 * scale**2:
            return basis @ c
        f0, t = value(c), 1.0
        while value(c + t * step) > f0 - 0.25 * t * decrement and t > 1e-12:
            t *= 0.5
        if t <= 1e-12:  # no decrease left at float resolution: at the minimum
            return basis @ c
        c = c + t * step
    raise ValueError(
        message(
            "X, y",
            "non-degenerate (every point on the margin a support vector with a_i > 0)",
            "a data set where Soudry's w_tilde equations have no solution",
            "Degenerate supports give log log t corrections that this function does not model",
        )
    )


def _check_nondegenerate(Z: np.ndarray, w_hat: np.ndarray) -> None:
    """Some dual a with sum_S a_i z_i = w_hat has a_i > 0 on every margin point (an LP)."""
    k = Z.shape[0]
    res = linprog(
        np.r_[np.zeros(k), -1.0], A_ub=np.hstack([-np.eye(k), np.ones((k, 1))]), b_ub=np.zeros(k),
        A_eq=np.hstack([Z.T, np.zeros((Z.shape[1], 1))]), b_eq=w_hat,
        bounds=[(0, None)] * k + [(None, 1.0)], method="highs",
    )  # fmt: skip
    if res.status != 0 or -res.fun <= 1e-9 * max(1.0, float(np.abs(res.x[:k]).max())):
        raise ValueError(
            message(
                "X, y",
                "non-degenerate (a dual a_i > 0 for every point on the margin)",
                "a point on the margin that no dual solution uses",
                "Soudry's w_tilde does not exist there (GD picks up log log t terms); "
                "perturb the data",
            )
        )


def soudry_asymptotics(X: Any, y: Any, eta: float) -> SoudryAsymptotics:
    """Predicted w_hat, w_tilde and the log t slopes of GD on separable data.

    Soudry et al. (2018), Theorem 3 and its Eq. for w_tilde: on the set S of
    points on the margin (y_i w_hat . x_i = 1), with z_i = y_i x_i,

        eta exp(-z_i . w_tilde) = a_i > 0   and   sum_{i in S} a_i z_i = w_hat.

    When more than d points sit on the margin the dual a is not unique, so
    w_tilde cannot be read off a particular dual; it is the unique minimiser
    over span(S) of the strictly convex

        F(w) = sum_{i in S} eta exp(-z_i . w) + w_hat . w,

    whose stationarity condition grad F = w_hat - sum_S eta exp(-z_i . w) z_i = 0
    is exactly that system (a_i := eta exp(-z_i . w_tilde)). Solved by Newton with
    backtracking to |grad F| <= 1e-14 |w_hat|. If S spans R^d the solution is
    unique (``determined=True``); otherwise F is constant along span(S)^perp, the
    component of w_tilde there depends on the start, and the returned w_tilde is
    the one in span(S) (that component set to 0, ``determined=False``).

    >>> X = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    >>> a = soudry_asymptotics(X, [1, 1], eta=1.0)  # w_hat = (1, 0), a = (1/2, 1/2)
    >>> round(a.norm_slope, 12), [round(v, 12) + 0.0 for v in a.w_tilde.tolist()]
    (1.0, [0.69314718056, 0.0])
    """
    X = design("X", X)
    y = labels_pm1("y", y, X.shape[0])
    eta = check_positive("eta", eta)
    mm = max_margin(X, y)
    # every point on the margin carries weight eta exp(-z . w_tilde) / t in GD, not only a_i > 0
    on_margin = (mm.margins.numpy() <= 1.0 + 1e-9) | (mm.dual.numpy() > 0)
    Zall = (y[:, None] * X).numpy()
    Z = Zall[on_margin]
    w_hat = mm.w.numpy()
    _check_nondegenerate(Z, w_hat)
    support = mm.support.numpy()
    start = np.linalg.lstsq(Zall[support], np.log(eta / mm.dual.numpy()[support]), rcond=None)[0]
    w_tilde = _offset(Z, w_hat, eta, start)
    norm_hat = float(np.linalg.norm(w_hat))
    unit = w_hat / norm_hat
    perp = float(np.linalg.norm(w_tilde - (w_tilde @ unit) * unit))
    # w_tilde solves grad F = 0 to 1e-14 |w_hat|, i.e. to ~1e-14 |w_tilde| times the
    # conditioning of A^T diag(e) A; a perpendicular part below 1e-10 |w_tilde| is that
    # rounding, not signal: w_tilde is parallel to w_hat, the angle is 0 for all t and
    # cot angle(t) is infinite (a 2e15 "slope" otherwise).
    if perp <= _PARALLEL_RTOL * max(float(np.linalg.norm(w_tilde)), norm_hat):
        perp = 0.0
    return SoudryAsymptotics(
        torch.from_numpy(w_hat),
        torch.from_numpy(w_tilde),
        norm_hat,
        norm_hat / perp if perp > 0 else math.inf,
        float(w_tilde @ unit) / perp if perp > 0 else math.copysign(math.inf, w_tilde @ unit),
        perp / norm_hat,
        bool(np.linalg.matrix_rank(Z) == X.shape[1]),
    )
