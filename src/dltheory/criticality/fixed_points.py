"""Fixed points K* of the diagonal kernel map and their stability.

The single-input recursion K^(l+1) = C_b + C_w E_{K^(l)}[s(z)^2] has fixed
points K* = C_b + C_w E_{K*}[s(z)^2] (Roberts, Yaida & Hanin 2022, Eq. (5.7)).
A fixed point attracts nearby variances when |chi_parallel(K*)| < 1 and repels them
when |chi_parallel(K*)| > 1; at |chi_parallel(K*)| = 1 the linearisation is silent
("marginal") and the next order decides (e.g. the power law K ~ 1 / (-a_1 l) of the K* = 0 class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import check_nonnegative, check_positive, message
from ..activations import Activation, activation
from .susceptibility import chi_parallel, chi_perp

__all__ = ["FixedPoint", "FixedPoints", "fixed_points"]

__fuzz_exempt__ = {"FixedPoint": "result record, built by fixed_points()"}

Stability = Literal["stable", "marginal", "unstable"]

# |chi_parallel| within this of 1 counts as marginal.
MARGINAL_TOL = 1e-9
_GRID_SIZE = 600


@dataclass(frozen=True)
class FixedPoint:
    """One fixed point K* of K -> C_b + C_w E_K[s^2].

    Attributes:
        k_star: the fixed-point variance K* >= 0.
        chi_parallel: (C_w / 2) E_{K*}[(s^2)''], the slope of the map at K*.
        chi_perp: C_w E_{K*}[s'^2].
        stability: ``"stable"`` (|chi_parallel| < 1), ``"marginal"`` (= 1 within
            ``MARGINAL_TOL``) or ``"unstable"``.
    """

    k_star: float
    chi_parallel: float
    chi_perp: float
    stability: Stability

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k_star) and self.k_star >= 0):
            raise ValueError(message("k_star", "a finite variance >= 0", self.k_star))

    @property
    def stable(self) -> bool:
        """Whether nearby variances converge to K* exponentially (|chi_parallel| < 1)."""
        return self.stability == "stable"


@dataclass(frozen=True)
class FixedPoints:
    """All fixed points found in [0, k_max], in increasing order.

    Attributes:
        points: the isolated fixed points.
        line_of_fixed_points: True when every K in [0, k_max] is fixed (e.g.
            linear nets with C_w = 1, C_b = 0, or ReLU with C_w = 2, C_b = 0);
            ``points`` is then empty.
        k_max: the upper end of the search interval.
    """

    points: tuple[FixedPoint, ...]
    line_of_fixed_points: bool
    k_max: float

    def __iter__(self):
        return iter(self.points)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> FixedPoint:
        return self.points[index]


def _classify(chi: float) -> Stability:
    if abs(abs(chi) - 1.0) <= MARGINAL_TOL:
        return "marginal"
    return "stable" if abs(chi) < 1.0 else "unstable"


def _point(act: Activation, c_w: float, k: float) -> FixedPoint:
    cp = float(chi_parallel(act, c_w, k))
    return FixedPoint(
        k_star=k, chi_parallel=cp, chi_perp=float(chi_perp(act, c_w, k)), stability=_classify(cp)
    )


def fixed_points(
    act: str | Activation, c_w: float, c_b: float, k_max: float = 100.0
) -> FixedPoints:
    """Fixed points K* = C_b + C_w E_{K*}[s(z)^2] in [0, k_max].

    Eq. (5.7) of Roberts, Yaida & Hanin (2022). The residual
    g(K) = C_b + C_w E_K[s^2] - K is scanned on a log-spaced grid of
    ``k_max * 1e-10 .. k_max`` for sign changes, each refined by Brent's method
    (to ~1e-15 relative); K* = 0 is included when g(0) = 0 (C_b = 0 and
    s(0) = 0). Roots where g touches zero without changing sign (half-stable
    points, such as GELU's at criticality) are not found by the scan; see
    :func:`~dltheory.criticality.critical_point`.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        c_b: bias variance C_b >= 0.
        k_max: upper end of the search interval, > 0.

    Returns:
        :class:`FixedPoints`; ``line_of_fixed_points`` is True when g = 0 on the
        whole grid (every K is fixed).

    Example:
        >>> fps = fixed_points("tanh", 1.0, 0.0)
        >>> [(p.k_star, p.stability) for p in fps]
        [(0.0, 'marginal')]
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    k_max = check_positive("k_max", k_max)

    def g(k: torch.Tensor | float) -> torch.Tensor:
        k = torch.as_tensor(k, dtype=torch.float64)
        return c_b + c_w * s.second_moment(k) - k

    grid = torch.logspace(
        math.log10(k_max) - 10, math.log10(k_max), _GRID_SIZE, dtype=torch.float64
    )
    values = g(grid).numpy()
    # Quadrature is accurate to ~1e-12 absolute: a residual below that is zero.
    scale = 1e-10 * np.maximum(1.0, grid.numpy())
    if np.all(np.abs(values) <= scale):
        return FixedPoints(points=(), line_of_fixed_points=True, k_max=k_max)

    roots: list[float] = []
    if abs(float(g(0.0))) <= 1e-14:
        roots.append(0.0)
    signs = np.sign(np.where(np.abs(values) <= 1e-300, 0.0, values))
    ks = grid.numpy()
    for i in range(len(ks) - 1):
        if signs[i] == 0 and (not roots or not math.isclose(roots[-1], ks[i])):
            roots.append(float(ks[i]))
        elif signs[i] * signs[i + 1] < 0:
            root = brentq(lambda v: float(g(v)), ks[i], ks[i + 1], xtol=1e-300, rtol=1e-15)
            roots.append(float(root))
    points = tuple(_point(s, c_w, k) for k in roots)
    return FixedPoints(points=points, line_of_fixed_points=False, k_max=k_max)
