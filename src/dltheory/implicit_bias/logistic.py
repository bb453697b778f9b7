"""Gradient descent with logistic / exponential loss on separable data: the max-margin limit.

Soudry, Hoffer, Nacson, Gunasekar & Srebro (2018), "The implicit bias of
gradient descent on separable data" (Theorems 3 and 4); course notes, lecture
11/14. For L(w) = sum_i l(y_i w . x_i) with l(u) = log(1 + e^{-u}) or e^{-u}
and a small enough step eta, GD from any w_0 satisfies

    w(t) = w_hat log t + w_tilde + o(1),   eta exp(-y_i x_i . w_tilde) = a_i on the support,

where w_hat = sum_i a_i y_i x_i is the hard-margin SVM (:mod:`.margin`). Hence
|w(t)| grows like |w_hat| log t = log t / gamma, and the angle to w_hat obeys

    cot angle(t) = (|w_hat| log t + u . w_tilde) / |P_perp w_tilde|   (u = w_hat / |w_hat|),

so the angle decays like |P_perp w_tilde| / (|w_hat| log t): the 1 / log t rate.
w_tilde is fixed by the support equations when the support vectors are d
linearly independent points (the generic case with |S| = d); otherwise its
component outside their span depends on the start and is not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .._checks import as_float_tensor, check_choice, check_int, check_positive, message
from ._validate import design, labels_pm1
from .margin import max_margin

try:
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["GDTrajectory", "SoudryAsymptotics", "logistic_gd", "soudry_asymptotics"]

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

    The loss is the sum over points, as in the notes and Soudry et al. (2018);
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
        w = as_float_tensor("w0", w0, ndim=1, dtype=torch.float64).numpy().copy()
        if w.size != X.shape[1]:
            raise ValueError(message("w0", f"of length {X.shape[1]}", w.size))
    grid = np.unique(np.round(np.geomspace(1, steps, n_log)).astype(np.int64))
    log_at = np.concatenate([[0], grid])
    Z = np.ascontiguousarray((y[:, None] * X).numpy())
    ws = _run(Z, w, eta, log_at, loss == "exponential")
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
        cot_slope: |w_hat| / |P_perp w_tilde|, the slope of cot angle(t) against log t.
        cot_intercept: u . w_tilde / |P_perp w_tilde|.
        angle_coefficient: |P_perp w_tilde| / |w_hat|, so angle(t) ~ coefficient / log t.
        determined: whether the support vectors span R^d (w_tilde fully predicted).
    """

    w_hat: torch.Tensor
    w_tilde: torch.Tensor
    norm_slope: float
    cot_slope: float
    cot_intercept: float
    angle_coefficient: float
    determined: bool


def soudry_asymptotics(X: Any, y: Any, eta: float) -> SoudryAsymptotics:
    """Predicted w_hat, w_tilde and the log t slopes of GD on separable data.

    Soudry et al. (2018), Theorem 3 / Eq. (8): on the support S,
    y_i x_i . w_tilde = log(eta / a_i); solved by least squares (exact when the
    support vectors are d independent points, ``determined=True``).

    >>> X = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    >>> a = soudry_asymptotics(X, [1, 1], eta=1.0)  # w_hat = (1, 0), a = (1/2, 1/2)
    >>> round(a.norm_slope, 12), [round(v, 12) + 0.0 for v in a.w_tilde.tolist()]
    (1.0, [0.69314718056, 0.0])
    """
    X = design("X", X)
    y = labels_pm1("y", y, X.shape[0])
    eta = check_positive("eta", eta)
    mm = max_margin(X, y)
    support = mm.support.numpy()
    Z = (y[:, None] * X).numpy()[support]
    rhs = np.log(eta / mm.dual.numpy()[support])
    w_tilde = np.linalg.lstsq(Z, rhs, rcond=None)[0]
    w_hat = mm.w.numpy()
    norm_hat = float(np.linalg.norm(w_hat))
    unit = w_hat / norm_hat
    perp = float(np.linalg.norm(w_tilde - (w_tilde @ unit) * unit))
    return SoudryAsymptotics(
        torch.from_numpy(w_hat),
        torch.from_numpy(w_tilde),
        norm_hat,
        norm_hat / perp if perp > 0 else math.inf,
        float(w_tilde @ unit) / perp if perp > 0 else math.inf,
        perp / norm_hat,
        bool(np.linalg.matrix_rank(Z) == X.shape[1]),
    )
