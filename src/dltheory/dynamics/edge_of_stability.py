"""Sharpness during training: the edge of stability.

Cohen, Kaur, Li, Kolter & Talwalkar (2021), "Gradient descent on neural networks
typically occurs at the edge of stability": under full-batch GD with step eta the
sharpness lambda_max(H) of the training loss first rises (progressive
sharpening) until it reaches 2/eta, then hovers there while the loss keeps
falling, non-monotonically. :class:`Sharpness` is the tracker that measures it
(top Hessian eigenvalue by the project's Lanczos, warm-started from the previous
eigenvector); :func:`edge_of_stability_summary` reads a trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._checks import as_float_array, check_int, check_positive, message
from ..finite.functional_model import FunctionalModel
from .curvature_products import loss_hessian_eigenvalues

__all__ = ["EdgeOfStability", "Sharpness", "edge_of_stability_summary"]

__fuzz_exempt__ = {
    "edge_of_stability_summary:nan": "late_mean and late_max_deviation are NaN when the "
    "sharpness never reaches the band (documented)",
}


@dataclass
class Sharpness:
    """Tracker: lambda_max of the training-loss Hessian every ``every`` optimizer steps.

    Usable as ``train(..., track=("loss", Sharpness(every=10)))``. On recorded
    steps that are not multiples of ``every`` it returns NaN (not a stale value).
    Each computation starts Lanczos from the previous top eigenvector (``v0``), so
    later calls need few Hessian-vector products (forward-over-reverse, about 2-3
    gradients each). The model is measured without being changed: inputs of any
    shape, BatchNorm in train mode by the batch's statistics (the Hessian of the loss
    full-batch GD descends), Dropout in train mode refused.

    Args:
        every: compute at steps that are multiples of this (>= 1).
        tol: relative Lanczos residual tolerance.
        name: the tracker's name in the trajectory.

    Attributes:
        n_matvecs: Hessian-vector products used so far.
        residuals: the certified relative residual of each computed value.
    """

    every: int = 1
    tol: float = 1e-4
    name: str = "sharpness"
    n_matvecs: int = field(default=0, init=False)
    residuals: list[float] = field(default_factory=list, init=False)
    _v0: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.every = check_int("every", self.every, minimum=1)
        self.tol = check_positive("tol", self.tol)
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(message("name", "a non-empty string", self.name))

    def __call__(self, state: Any) -> float:
        if state.step % self.every:
            return math.nan
        res = loss_hessian_eigenvalues(
            FunctionalModel(state.model), state.loss_fn, state.x, state.y, tol=self.tol, v0=self._v0
        )
        self._v0 = res.eigenvectors[:, 0].detach().clone()
        self.n_matvecs += int(res.n_matvecs)
        top = float(res.eigenvalues[0])
        self.residuals.append(float(res.residuals[0]) / max(abs(top), 1e-300))
        return top


@dataclass(frozen=True)
class EdgeOfStability:
    """What a sharpness trace shows.

    Attributes:
        threshold: 2 / eta.
        initial: sharpness at step 0.
        peak: max sharpness.
        reach_step: first recorded step with sharpness >= (1 - band) 2/eta (-1 if never).
        late_mean: mean sharpness / (2/eta) from ``reach_step + settle`` on (NaN if never).
        late_max_deviation: max |sharpness / (2/eta) - 1| over the late phase (NaN if never).
        sharpened: whether the sharpness rose by more than ``band`` relative first.
        loss_decreased: final loss < loss at reach_step.
        non_monotone: whether the late loss ever increased from one record to the next.
    """

    threshold: float
    initial: float
    peak: float
    reach_step: int
    late_mean: float
    late_max_deviation: float
    sharpened: bool
    loss_decreased: bool
    non_monotone: bool


def edge_of_stability_summary(
    steps: Any, sharpness: Any, loss: Any, lr: float, band: float = 0.1, settle: int = 0
) -> EdgeOfStability:
    """Summarise a (steps, sharpness, loss) trace against 2/eta (Cohen et al. 2021).

    Args:
        steps: recorded steps, shape (T,).
        sharpness: lambda_max(H) per record (NaN where not computed), shape (T,).
        loss: training loss per record, shape (T,).
        lr: the learning rate eta.
        band: the relative band around 2/eta.
        settle: steps after the first reach excluded from the late phase (the
            first overshoot above 2/eta, Cohen et al. 2021, Fig. 1).

    >>> s = edge_of_stability_summary([0, 1, 2, 3], [1.0, 1.9, 2.05, 1.98],
    ...                               [1.0, 0.5, 0.6, 0.4], lr=1.0)
    >>> s.reach_step, round(s.late_mean, 3), s.sharpened, s.non_monotone
    (1, 0.988, True, True)
    """
    lr = check_positive("lr", lr)
    band = check_positive("band", band)
    settle = check_int("settle", settle, minimum=0)
    steps = as_float_array("steps", steps, ndim=1)
    if np.any(steps != np.round(steps)):
        raise ValueError(message("steps", "integer step numbers", steps))
    steps = steps.astype(np.int64)
    sharp = _real_array("sharpness", sharpness)
    loss = as_float_array("loss", loss, ndim=1, allow_inf=True)
    if not (steps.ndim == sharp.ndim == loss.ndim == 1 and steps.size == sharp.size == loss.size):
        raise ValueError(message("sharpness", "1-D and as long as steps and loss", sharp.shape))
    ok = np.isfinite(sharp)
    if not ok.any():
        raise ValueError(message("sharpness", "computed at one step at least", "all NaN"))
    thr = 2.0 / lr
    s, st = sharp[ok], steps[ok]
    hit = np.nonzero(s >= (1 - band) * thr)[0]
    if hit.size == 0:
        reach, late_mean, late_dev, decreased, wiggle = -1, math.nan, math.nan, False, False
    else:
        reach = int(st[hit[0]])
        late = s[st >= reach + settle] / thr
        if late.size == 0:
            raise ValueError(message("settle", "shorter than the recorded late phase", settle))
        late_mean, late_dev = float(late.mean()), float(np.abs(late - 1).max())
        late_loss = loss[steps >= reach]
        decreased = bool(late_loss[-1] < late_loss[0])
        wiggle = bool(np.any(np.diff(late_loss) > 0))
    return EdgeOfStability(
        threshold=thr,
        initial=float(s[0]),
        peak=float(s.max()),
        reach_step=reach,
        late_mean=late_mean,
        late_max_deviation=late_dev,
        sharpened=bool(s.max() > (1 + band) * s[0]),
        loss_decreased=decreased,
        non_monotone=wiggle,
    )


def _real_array(name: str, value: Any) -> np.ndarray:
    """A 1-D float64 copy of real numbers; NaN marks records without a value."""
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if array.dtype.kind not in "iuf":
        raise TypeError(message(name, "1-D real numbers (NaN where not computed)", value))
    if array.ndim != 1:
        raise ValueError(message(name, "a 1-D array", f"shape {array.shape}"))
    return array.astype(np.float64)
