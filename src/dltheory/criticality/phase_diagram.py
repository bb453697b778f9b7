"""Order-to-chaos phase diagram over a (C_w, C_b) grid.

At each grid point the stable fixed point K* gives chi_perp(K*) = C_w E[s'^2]
and xi_c (see :mod:`dltheory.criticality.depth_scales`); the boundary is the
curve chi_perp(K*(C_w, C_b)) = 1 (Schoenholz et al. 2017, Fig. 1 and Eq. (9);
Poole et al. 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import as_float_tensor, message
from ..activations import Activation, activation
from .depth_scales import depth_scales_at, phase_of, stable_k_star
from .fixed_points import MARGINAL_TOL
from .susceptibility import chi_parallel, chi_perp

__all__ = ["PhaseDiagram", "phase_diagram", "plot_phase_diagram"]

__fuzz_exempt__ = {
    "PhaseDiagram": "result record, built by phase_diagram()",
    "phase_diagram:nan": "documented: xi_c inf at criticality, NaN where the variances diverge; "
    "boundary_c_w NaN where no boundary lies in the grid",
}

_CODES = {"ordered": -1, "critical": 0, "chaotic": 1}


@dataclass(frozen=True)
class PhaseDiagram:
    """chi_perp, xi_c and phases over a grid, with the order/chaos boundary.

    Attributes:
        c_w: (n_w,) weight variances.
        c_b: (n_b,) bias variances.
        chi_perp: (n_b, n_w) chi_perp(K*); NaN where variances diverge.
        xi_c: (n_b, n_w) correlation depth scale (inf at criticality, NaN where
            variances diverge).
        phase: (n_b, n_w) labels ``"ordered"``, ``"chaotic"``, ``"critical"`` or
            ``"divergent"``.
        boundary_c_w: (n_b,) the C_w with chi_perp(K*) = 1 at each C_b inside the
            C_w range of the grid; NaN where there is none.
    """

    c_w: np.ndarray
    c_b: np.ndarray
    chi_perp: np.ndarray
    xi_c: np.ndarray
    phase: np.ndarray
    boundary_c_w: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.c_b), len(self.c_w))
        for name in ("chi_perp", "xi_c", "phase"):
            if getattr(self, name).shape != shape:
                raise ValueError(message(name, f"of shape {shape}", getattr(self, name).shape))


def _grid(name: str, values: Any) -> np.ndarray:
    grid = as_float_tensor(name, values, ndim=1, detach=True).double().numpy()
    if (grid < 0).any() or (np.diff(grid) <= 0).any():
        raise ValueError(message(name, "increasing variances >= 0", values))
    return grid


def _warm_k_star(s: Activation, w: float, c_b: float, k_low: float, k_high: float) -> float:
    """The stable K*(w) between K*(w_i) = k_low and K*(w_i+1) = k_high, w_i < w < w_i+1.

    g(K; w) = C_b + w E_K[s^2] - K grows with w, so g(k_low; w) >= 0 >= g(k_high; w):
    one Brent search on g instead of the scan of ``fixed_points``. Falls back to
    the scan when the bracket is degenerate or the root found is not stable.
    """
    if 0.0 < k_low < k_high:

        def g(k: float) -> float:
            return c_b + w * float(s.second_moment(torch.tensor(k, dtype=torch.float64))) - k

        if g(k_low) >= 0.0 >= g(k_high):
            k = float(brentq(g, k_low, k_high, xtol=1e-300, rtol=1e-15))
            if abs(float(chi_parallel(s, w, k))) < 1.0:
                return k
    return stable_k_star(s, w, c_b)


def _root(s: Activation, c_b: float, w: tuple[float, float], k: tuple[float, float]) -> float:
    """C_w in (w[0], w[1]) where chi_perp(K*) = 1, given the end points' K*."""

    def excess(c_w: float) -> float:
        return float(chi_perp(s, c_w, _warm_k_star(s, c_w, c_b, *k))) - 1.0

    low = w[0]
    if k[0] == 0.0:
        # K* = 0 attracts at w[0] (C_b = 0, s(0) = 0), with chi_perp = chi_parallel
        # = C_w s'(0)^2: ordered up to w_0 = 1 / s'(0)^2, where K* = 0 turns marginal
        # and a K* > 0 branch takes over with chi_perp = 1 + O((C_w - w_0)^2) (tanh:
        # the critical point (1, 0)). If that branch is chaotic, the boundary is w_0.
        w_0 = 1.0 / float(chi_perp(s, 1.0, 0.0))
        if not w[0] < w_0 < w[1]:
            return math.nan
        low = w_0 + min(1e-3, 0.5 * (w[1] - w_0))
        if excess(low) >= 0.0:
            return w_0
    return float(brentq(excess, low, w[1], xtol=1e-12, rtol=1e-14))


def _boundary(s: Activation, c_b: float, c_w: np.ndarray, chi: np.ndarray, k: np.ndarray) -> float:
    """The first C_w of the row where chi_perp(K*) - 1 changes sign (NaN if none)."""
    values = chi - 1.0
    for i in range(len(c_w) - 1):
        if abs(values[i]) <= MARGINAL_TOL:
            return float(c_w[i])
        if np.isfinite(values[i : i + 2]).all() and values[i] * values[i + 1] < 0:
            pair = (float(c_w[i]), float(c_w[i + 1]))
            return _root(s, c_b, pair, (float(k[i]), float(k[i + 1])))
    return float(c_w[-1]) if abs(values[-1]) <= MARGINAL_TOL else math.nan


def phase_diagram(act: str | Activation, c_w_grid: Any, c_b_grid: Any) -> PhaseDiagram:
    """chi_perp(K*), xi_c and the phase on a (C_b, C_w) grid, and the boundary.

    The boundary is found per C_b by Brent's method on chi_perp(K*(C_w)) - 1
    between neighbouring grid values of C_w where it changes sign, K*(C_w)
    bracketed by the grid neighbours' K*. At C_b = 0, where K* = 0 attracts up
    to C_w = 1 / s'(0)^2, the boundary is exactly that C_w when the K* > 0
    branch beyond it is chaotic (tanh: C_w = 1).

    ``boundary_c_w`` is NaN only where chi_perp - 1 does not change sign
    between finite grid values of the row: the boundary lies outside the C_w
    range, or next to a divergent point. Chaotic points within ~1e-6 of the
    boundary (rho* unresolved by quadrature) keep their chi_perp and phase,
    with a NaN xi_c.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w_grid: (n_w,) increasing weight variances >= 0.
        c_b_grid: (n_b,) increasing bias variances >= 0.

    Returns:
        :class:`PhaseDiagram` (NumPy arrays, rows indexed by C_b).

    Example:
        >>> d = phase_diagram("relu", [1.0, 2.0], [0.0])
        >>> d.phase.tolist(), float(d.boundary_c_w[0])
        ([['ordered', 'critical']], 2.0)
        >>> float(phase_diagram("tanh", [0.5, 1.5], [0.0]).boundary_c_w[0])  # tanh: (1, 0)
        1.0
    """
    s = activation(act)
    c_w = _grid("c_w_grid", c_w_grid)
    c_b = _grid("c_b_grid", c_b_grid)
    chi = np.full((len(c_b), len(c_w)), math.nan)
    xi = np.full_like(chi, math.nan)
    k_star = np.full_like(chi, math.nan)
    phase = np.full(chi.shape, "divergent", dtype=object)
    for i, b in enumerate(c_b):
        for j, w in enumerate(c_w):
            try:
                k_star[i, j] = stable_k_star(s, float(w), float(b))
            except ValueError:  # no stable K*: variances diverge
                continue
            try:
                d = depth_scales_at(s, float(w), float(b), float(k_star[i, j]))
            except ValueError:  # rho* too close to 1 to resolve: chi_perp and phase only
                chi[i, j] = float(chi_perp(s, float(w), float(k_star[i, j])))
                phase[i, j] = phase_of(float(chi[i, j]))
                continue
            chi[i, j], xi[i, j], phase[i, j] = d.chi_perp, d.xi_c, d.phase
    boundary = np.array([_boundary(s, float(b), c_w, chi[i], k_star[i]) for i, b in enumerate(c_b)])
    return PhaseDiagram(
        c_w=c_w, c_b=c_b, chi_perp=chi, xi_c=xi, phase=phase.astype(str), boundary_c_w=boundary
    )


def plot_phase_diagram(diagram: PhaseDiagram, ax: Any = None, measured: Any = None) -> Any:
    """Plot chi_perp over (C_w, C_b) with the order/chaos boundary.

    Args:
        diagram: a :class:`PhaseDiagram`.
        ax: a matplotlib Axes to draw on (a new figure when None).
        measured: optional (n, 2) points (C_w, C_b) to mark, e.g. measured
            critical initialisations.

    Returns:
        the matplotlib Figure.
    """
    if not isinstance(diagram, PhaseDiagram):
        raise TypeError(message("diagram", "a PhaseDiagram", type(diagram).__name__))
    import matplotlib.figure

    if ax is None:
        fig = matplotlib.figure.Figure(figsize=(5, 4))
        ax = fig.add_subplot()
    fig = ax.figure
    chi = diagram.chi_perp
    log_chi = np.full_like(chi, math.nan)
    np.log(chi, out=log_chi, where=chi > 0)  # chi_perp = 0 (C_w = 0) and NaN stay blank
    mesh = ax.pcolormesh(diagram.c_w, diagram.c_b, log_chi, cmap="RdBu_r", shading="nearest")
    fig.colorbar(mesh, ax=ax, label="log chi_perp(K*)")
    ok = np.isfinite(diagram.boundary_c_w)
    ax.plot(diagram.boundary_c_w[ok], diagram.c_b[ok], "k-", label="chi_perp = 1")
    if measured is not None:
        points = as_float_tensor("measured", measured, ndim=2, detach=True).double().numpy()
        if points.shape[1] != 2:
            raise ValueError(message("measured", "of shape (n, 2): (C_w, C_b)", points.shape))
        ax.plot(points[:, 0], points[:, 1], "o", color="orange", label="measured")
    ax.set_xlabel("C_w")
    ax.set_ylabel("C_b")
    ax.legend(loc="upper left")
    return fig
