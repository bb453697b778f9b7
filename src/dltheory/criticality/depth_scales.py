"""Depth scales xi_q and xi_c of signal propagation, and the phase of (C_w, C_b).

At a stable fixed point K* of the diagonal map, two inputs of variance K* have
correlation rho^(l) = K_12^(l) / K* that follows the correlation map

    f(rho) = [C_b + C_w E[s(u) s(v)]] / K*,   (u, v) ~ N(0, K* [[1, rho], [rho, 1]]),

whose slope is f'(rho) = C_w E[s'(u) s'(v)] (Schoenholz et al. 2017, "Deep
information propagation", Eqs. (4)-(9)). Linearising about a stable fixed point
rho* of f, |rho^(l) - rho*| ~ exp(-l / xi_c) with xi_c = -1 / log f'(rho*); the
variance converges as |K^(l) - K*| ~ exp(-l / xi_q), xi_q = -1 / log chi_parallel(K*).

* ordered (chi_perp(K*) < 1): rho* = 1 is stable, f'(1) = chi_perp(K*) = chi_1;
* chaotic (chi_perp(K*) > 1): rho* = 1 repels; the returned ``xi_c`` is that of
  the stable fixed point rho* < 1 of f (the correlation the inputs approach),
  with slope C_w E[s'(u) s'(v)] at rho*;
* critical (chi_perp(K*) = 1): xi_c = inf, the approach is a power law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import Plain, as_float_tensor, check_finite_result, check_nonnegative, message
from ..activations import Activation, activation
from .fixed_points import MARGINAL_TOL, fixed_points
from .susceptibility import chi_parallel, chi_perp

__all__ = [
    "DepthScales",
    "Phase",
    "correlation_map",
    "depth_scales",
    "depth_scales_at",
    "phase_of",
    "stable_k_star",
]

__fuzz_exempt__ = {
    "DepthScales": "result record, built by depth_scales()",
    "depth_scales:inf": "xi_q, xi_c are inf where |chi| = 1 (no exponential decay; documented)",
}

Phase = Literal["ordered", "chaotic", "critical"]
_PHASES = ("ordered", "chaotic", "critical")
# rho in [-1, 0.99] by 0.01, then 1 - 10^-j for j = 2.25 .. 7 (rho* nears 1 at the boundary).
_RHO_GRID = np.concatenate([np.linspace(-1.0, 0.99, 200), 1.0 - np.logspace(-2.25, -7, 20)])
_SCAN_FLOOR = 1e-10  # fixed_points scans K from k_max * 1e-10 up


@dataclass(frozen=True)
class DepthScales:
    """Depth scales at the fixed point K* used.

    Attributes:
        k_star: the stable fixed point used (the largest stable one; 0 when only
            K* = 0 attracts; 1.0 when every K is fixed, e.g. ReLU at C_w = 2,
            C_b = 0, whose susceptibilities do not depend on K).
        chi_parallel: chi_parallel(K*), the slope of the variance map.
        chi_perp: chi_perp(K*) = chi_1, the slope of the correlation map at rho = 1.
        rho_star: the stable fixed point of the correlation map (1 unless chaotic).
        chi_c: the slope of the correlation map at ``rho_star``.
        xi_q: -1 / log |chi_parallel(K*)| (inf when |chi_parallel| = 1).
        xi_c: -1 / log |chi_c| (inf at criticality).
        phase: ``"ordered"``, ``"chaotic"`` or ``"critical"``, by chi_perp(K*).
    """

    k_star: float
    chi_parallel: float
    chi_perp: float
    rho_star: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: Phase

    def __post_init__(self) -> None:
        if self.phase not in _PHASES:
            allowed = ", ".join(repr(p) for p in _PHASES)
            raise ValueError(message("phase", f"one of {allowed}", self.phase))


def _scale(chi: float) -> float:
    """-1 / log |chi|: inf at |chi| = 1, 0 at chi = 0."""
    chi = abs(chi)
    if abs(chi - 1.0) <= MARGINAL_TOL:
        return math.inf
    if chi == 0.0:
        return 0.0
    return -1.0 / math.log(chi)


def correlation_map(
    act: str | Activation, c_w: float, c_b: float, k_star: float, rho: torch.Tensor | float
) -> torch.Tensor:
    """f(rho) = [C_b + C_w E[s(u) s(v)]] / K* at equal variances K* > 0.

    Schoenholz et al. (2017), Eq. (5) divided by q*.

    Example:
        >>> float(correlation_map("relu", 2.0, 0.0, 1.0, 1.0))
        1.0
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    k = check_nonnegative("k_star", k_star)
    if k == 0:
        raise ValueError(message("k_star", "> 0", k_star, "The correlation is undefined at K = 0"))
    q = torch.tensor(k, dtype=torch.float64)
    rho = as_float_tensor("rho", rho, dtype=torch.float64, detach=True)
    if float(rho.abs().max()) > 1.0:
        raise ValueError(
            message(
                "rho", "correlations in [-1, 1]", Plain(f"max |rho| {float(rho.abs().max()):g}")
            )
        )
    out = (c_b + c_w * s.nngp_map(q, rho * q, q)) / q
    check_finite_result("c_w, c_b, k_star", out)
    return out


def _small_k_star(s: Activation, c_w: float, c_b: float, k_low: float) -> float | None:
    """A stable K* in (0, k_low) below the scan of ``fixed_points``, or None.

    At C_b = 0 with s(0) = 0 and C_w just past 1 / s'(0)^2 (e.g. tanh at
    C_w = 1 + 1e-8) K* = 0 repels and the stable K* is O(C_w s'(0)^2 - 1),
    below the scan's first point. It is the root of h(K) = C_w E_K[s^2] / K - 1,
    which is C_w s'(0)^2 - 1 > 0 as K -> 0 (no cancellation, unlike g(K)).
    """
    if c_b != 0.0:
        return None

    def h(k: float) -> float:
        return c_w * float(s.second_moment(torch.tensor(k, dtype=torch.float64))) / k - 1.0

    tiny = 1e-12 * k_low
    if not h(tiny) > 0.0 > h(k_low):
        return None
    k = float(brentq(h, tiny, k_low, xtol=1e-300, rtol=1e-15))
    return k if abs(float(chi_parallel(s, c_w, k))) < 1.0 else None


def stable_k_star(act: str | Activation, c_w: float, c_b: float) -> float:
    """The largest stable (or marginal) fixed point K* of K -> C_b + C_w E_K[s^2].

    1.0 when every K is fixed (a line of fixed points), 0.0 when only K* = 0
    attracts; a small K* below the scan of :func:`fixed_points` is found too.

    Raises:
        ValueError: no stable fixed point in [0, 100] (variances diverge).

    Example:
        >>> stable_k_star("identity", 0.5, 1.0)  # K* = 1 + K* / 2
        2.0
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    fps = fixed_points(s, c_w, c_b)
    if fps.line_of_fixed_points:
        return 1.0
    usable = [p.k_star for p in fps if p.stability != "unstable"]
    if not usable and len(fps) and fps[0].k_star == 0.0:
        small = _small_k_star(s, c_w, c_b, fps.k_max * _SCAN_FLOOR)
        usable = [small] if small is not None else []
    if not usable:
        raise ValueError(
            message(
                "(c_w, c_b)",
                "such that the variance map has a stable fixed point in [0, 100]",
                (c_w, c_b),
                "Variances diverge here; lower c_w",
            )
        )
    return max(usable)


def _slope(s: Activation, c_w: float, c_b: float, k: float, rho: float) -> float:
    """f'(rho) = C_w d/dK_12 E[s(u) s(v)], = C_w E[s'(u) s'(v)] for continuous s (Price's
    theorem). With a jump s' has a delta that ``ntk_map`` (the autograd derivative)
    misses: there a central difference of f itself, step h ~ 1e-5 (1 - rho^2)."""
    if not s.jumps:
        q = torch.tensor(k, dtype=torch.float64)
        return float(c_w * s.ntk_map(q, rho * q, q))
    h = 1e-5 * (1 - rho * rho)
    pts = torch.tensor([rho - h, rho + h], dtype=torch.float64)
    low, high = correlation_map(s, c_w, c_b, k, pts).tolist()
    return (high - low) / (2 * h)


def _chaotic_rho_star(s: Activation, c_w: float, c_b: float, k: float) -> tuple[float, float]:
    """The fixed point rho* < 1 of f with |f'(rho*)| < 1, and f'(rho*).

    Near the order/chaos boundary rho* -> 1 (rho* = 1 - O(chi_perp - 1)), so
    the scan ends in points 1 - 10^-j (j <= 7) rather than at rho = 1 itself
    (always a root, and repelling here). It resolves rho* up to ~1 - 1e-6;
    closer to the boundary the residual is below quadrature accuracy.
    """

    def residual(r: float) -> float:
        return float(correlation_map(s, c_w, c_b, k, r)) - r

    values = correlation_map(s, c_w, c_b, k, torch.from_numpy(_RHO_GRID)).numpy() - _RHO_GRID
    roots: list[float] = []
    for i in range(len(_RHO_GRID) - 1):
        if abs(values[i]) <= 1e-13:
            roots.append(float(_RHO_GRID[i]))
        elif values[i] * values[i + 1] < 0 and abs(values[i + 1]) > 1e-13:
            roots.append(float(brentq(residual, _RHO_GRID[i], _RHO_GRID[i + 1], xtol=1e-15)))
    for root in roots:
        slope = _slope(s, c_w, c_b, k, root)
        if abs(slope) < 1.0:
            return root, slope
    raise ValueError(
        message("(c_w, c_b)", "with a stable correlation fixed point rho* < 1", (c_w, c_b))
    )


def depth_scales(act: str | Activation, c_w: float, c_b: float) -> DepthScales:
    """Depth scales xi_q, xi_c and the phase at the stable fixed point K*.

    xi_q = -1 / log chi_parallel(K*), xi_c = -1 / log f'(rho*) (Schoenholz et al.
    2017, Eqs. (4)-(9)); with rho* = 1 in the ordered phase, f'(1) = chi_perp(K*).
    In the chaotic phase xi_c is that of the stable rho* < 1 (module docstring).
    When only K* = 0 attracts (e.g. tanh with C_b = 0, C_w < 1) the network is
    linear in the limit and correlations are kept: rho* = 1, chi_c = 1, xi_c = inf.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        c_b: bias variance C_b >= 0.

    Returns:
        :class:`DepthScales`.

    Raises:
        ValueError: if the variance map has no stable fixed point in [0, 100],
            or (chaotic, within ~1e-6 of the boundary) rho* is not resolved.

    Example:
        >>> d = depth_scales("relu", 2.0, 0.0)  # He initialisation is critical
        >>> (d.phase, d.xi_c)
        ('critical', inf)
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    return depth_scales_at(s, c_w, c_b, stable_k_star(s, c_w, c_b))


def phase_of(chi_perp: float) -> Phase:
    """The phase named by chi_perp(K*): ordered (< 1), critical (= 1 within 1e-9), chaotic.

    >>> phase_of(1.0), phase_of(0.5), phase_of(float("inf"))
    ('critical', 'ordered', 'chaotic')
    """
    if abs(chi_perp - 1.0) <= MARGINAL_TOL:
        return "critical"
    return "ordered" if chi_perp < 1.0 else "chaotic"


def depth_scales_at(act: str | Activation, c_w: float, c_b: float, k_star: float) -> DepthScales:
    """:func:`depth_scales` at a given stable fixed point K* (e.g. from :func:`stable_k_star`).

    Example:
        >>> depth_scales_at("relu", 2.0, 0.0, 1.0).phase
        'critical'
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    k = check_nonnegative("k_star", k_star)
    cpar = float(chi_parallel(s, c_w, k))
    cperp = float(chi_perp(s, c_w, k))
    phase = phase_of(cperp)
    rho_star, chi_c = 1.0, cperp
    if k == 0.0:
        chi_c = 1.0
    elif phase == "chaotic":
        rho_star, chi_c = _chaotic_rho_star(s, c_w, c_b, k)
    return DepthScales(
        k_star=k,
        chi_parallel=cpar,
        chi_perp=cperp,
        rho_star=rho_star,
        chi_c=chi_c,
        xi_q=_scale(cpar),
        xi_c=_scale(chi_c) if phase != "critical" else math.inf,
        phase=phase,
    )
